//! PyTorch's legacy checkpoint format (`torch.save` before 1.6, or with
//! `_use_new_zipfile_serialization=False`): the format of MoCo's and SCAN's released
//! `.pth.tar` files.
//!
//! Written here because candle's reader (`candle_core::pickle::read_all_with_key`) takes only
//! the zip format, and no maintained crate reads this one (serde-pickle has no persistent ids,
//! which is how the pickle refers to tensor storages). The pickles themselves are interpreted
//! by candle's `Stack` (nothing is executed); this file reads only the container around them:
//!
//! 1. five pickles in a row: the magic number `0x1950a86a20f9469cfc6c`, the protocol version
//!    1001, the writer's `sys_info` (byte order, type sizes), the object (its tensors are
//!    `_rebuild_tensor_v2(storage, offset, size, stride, …)` with the storage a persistent id
//!    `('storage', <dtype>Storage, key, location, numel[, view])`), and the list of storage
//!    keys;
//! 2. then each storage in that order: its element count as a little-endian i64, then its
//!    elements as raw little-endian bytes.
//!
//! Tensors are views into those storages at any offset and strides (shared storages, slices,
//! transposes), and are copied out element by element into contiguous CPU tensors.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// The first pickle of every legacy file: protocol 2, `LONG1` of the 10-byte magic number, STOP.
const MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// The protocol version pickled after the magic number.
const PROTOCOL_VERSION: i64 = 1001;

/// Whether `path` starts like a legacy checkpoint (false for a zip archive or a short file).
pub fn is_legacy(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; MAGIC.len()];
    let mut f = std::fs::File::open(path)?;
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..])? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    Ok(head == MAGIC)
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::BadInput(format!(
        "{}: not a readable legacy PyTorch checkpoint ({what}); re-save it with a recent \
         PyTorch (`torch.save(torch.load(f), f)`) or convert it to safetensors",
        path.display()
    ))
}

fn pickle<R: BufRead>(r: &mut R) -> candle_core::Result<Object> {
    let mut stack = Stack::empty();
    stack.read_loop(r)?;
    stack.finalize()
}

/// Element size of a storage class (`FloatStorage`…); `None` for a class torch never wrote.
fn element_size(class: &str) -> Option<usize> {
    Some(match class {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

/// The candle dtype of a storage class, where candle has one.
fn dtype(class: &str) -> Option<DType> {
    Some(match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" => DType::U8,
        "LongStorage" => DType::I64,
        _ => return None,
    })
}

/// (key, storage class) of a persistent id `('storage', class, key, location, numel, …)`.
fn storage_id(id: &Object) -> Option<(String, String)> {
    let Object::Tuple(t) = id else { return None };
    match t.as_slice() {
        [Object::Unicode(tag), Object::Class { class_name, .. }, Object::Unicode(key), ..]
            if tag == "storage" =>
        {
            Some((key.clone(), class_name.clone()))
        }
        _ => None,
    }
}

/// Every storage the object refers to: key → class.
fn storages(obj: &Object, out: &mut HashMap<String, String>) {
    match obj {
        Object::PersistentLoad(id) => {
            if let Some((k, c)) = storage_id(id) {
                out.insert(k, c);
            }
        }
        Object::Tuple(v) | Object::List(v) => v.iter().for_each(|o| storages(o, out)),
        Object::Dict(kv) => kv.iter().for_each(|(k, v)| {
            storages(k, out);
            storages(v, out);
        }),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            storages(callable, out);
            storages(args, out);
        }
        _ => {}
    }
}

/// One tensor of the object: `_rebuild_tensor_v2(storage, offset, size, stride, …)`, possibly
/// wrapped in `_rebuild_parameter`. `None` for anything else (numbers, strings, dicts).
struct View {
    key: String,
    class: String,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// A non-negative pickled integer.
fn index(o: &Object) -> Option<usize> {
    match o {
        Object::Int(i) => usize::try_from(*i).ok(),
        Object::Long(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn usizes(o: &Object) -> Option<Vec<usize>> {
    let Object::Tuple(v) = o else { return None };
    v.iter().map(index).collect()
}

fn view(obj: &Object) -> Option<View> {
    let Object::Reduce { callable, args } = obj else {
        return None;
    };
    let Object::Class {
        module_name,
        class_name,
    } = callable.as_ref()
    else {
        return None;
    };
    let Object::Tuple(args) = args.as_ref() else {
        return None;
    };
    match (module_name.as_str(), class_name.as_str()) {
        ("torch._utils", "_rebuild_parameter") => view(args.first()?),
        ("torch._utils", "_rebuild_tensor_v2") => {
            let [Object::PersistentLoad(id), offset, size, stride, ..] = args.as_slice() else {
                return None;
            };
            let (key, class) = storage_id(id)?;
            Some(View {
                key,
                class,
                offset: index(offset)?,
                size: usizes(size)?,
                stride: usizes(stride)?,
            })
        }
        _ => None,
    }
}

/// Every tensor of a legacy checkpoint at the top level of its object (a state dict), or under
/// `key` when the top level is a dict holding it (`state_dict`, `model`); on the CPU, in the
/// file's dtype. A tensor of a dtype candle lacks (int32, int16, int8, bool) is left out.
pub fn read_all_with_key(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::BadInput(format!("{}: cannot open ({e})", path.display())))?;
    let mut r = BufReader::new(file);
    let mut head = [0u8; MAGIC.len()];
    r.read_exact(&mut head).map_err(|e| bad(path, e))?;
    if head != MAGIC {
        return Err(bad(path, "no magic number"));
    }
    let mut next = |what: &str| pickle(&mut r).map_err(|e| bad(path, format!("{what}: {e}")));
    match next("protocol version")? {
        Object::Int(v) if v as i64 == PROTOCOL_VERSION => {}
        Object::Long(PROTOCOL_VERSION) => {}
        other => return Err(bad(path, format!("protocol version {other:?}"))),
    }
    if let Object::Dict(info) = next("sys_info")? {
        let little = info.iter().find_map(|(k, v)| match (k, v) {
            (Object::Unicode(k), Object::Bool(b)) if k == "little_endian" => Some(*b),
            _ => None,
        });
        if little == Some(false) {
            return Err(bad(path, "written on a big-endian machine"));
        }
    }
    let obj = next("object")?;
    let keys = match next("storage keys")? {
        Object::List(k) | Object::Tuple(k) => k
            .into_iter()
            .map(|k| String::try_from(k).map_err(|o| bad(path, format!("storage key {o:?}"))))
            .collect::<Result<Vec<String>>>()?,
        other => return Err(bad(path, format!("storage keys {other:?}"))),
    };
    let mut classes = HashMap::new();
    storages(&obj, &mut classes);
    // The storages follow, in the order of `keys`: an i64 element count, then the bytes.
    let mut data: HashMap<String, Vec<u8>> = HashMap::new();
    for k in &keys {
        let class = classes
            .get(k)
            .ok_or_else(|| bad(path, format!("storage {k} is not referred to")))?;
        let size = element_size(class)
            .ok_or_else(|| bad(path, format!("storage type {class} of storage {k}")))?;
        let mut n = [0u8; 8];
        r.read_exact(&mut n)
            .map_err(|e| bad(path, format!("storage {k}: {e}")))?;
        let n = i64::from_le_bytes(n);
        let bytes = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| bad(path, format!("storage {k} of {n} elements")))?;
        let mut buf = Vec::new();
        (&mut r)
            .take(bytes as u64)
            .read_to_end(&mut buf)
            .map_err(|e| bad(path, format!("storage {k}: {e}")))?;
        if buf.len() != bytes {
            return Err(bad(
                path,
                format!("storage {k} is cut short ({} of {bytes} bytes)", buf.len()),
            ));
        }
        data.insert(k.clone(), buf);
    }
    let obj = match (key, obj) {
        (None, obj) => obj,
        (Some(key), Object::Dict(kv)) => kv
            .into_iter()
            .find(|(k, _)| matches!(k, Object::Unicode(k) if k == key))
            .map(|(_, v)| v)
            .ok_or_else(|| bad(path, format!("no key {key}")))?,
        (Some(key), _) => return Err(bad(path, format!("no key {key}: not a dict"))),
    };
    let Object::Dict(entries) = obj else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, value) in entries {
        let (Object::Unicode(name), Some(v)) = (name, view(&value)) else {
            continue;
        };
        let Some(dtype) = dtype(&v.class) else {
            continue;
        };
        let storage = data
            .get(&v.key)
            .ok_or_else(|| bad(path, format!("{name}: storage {} is missing", v.key)))?;
        out.push((
            name.clone(),
            gather(storage, dtype, &v).map_err(|e| bad(path, format!("{name}: {e}")))?,
        ));
    }
    Ok(out)
}

/// The elements of view `v` of `storage`, in row-major order, as a contiguous tensor.
fn gather(storage: &[u8], dtype: DType, v: &View) -> std::result::Result<Tensor, String> {
    if v.size.len() != v.stride.len() {
        return Err(format!("size {:?} and stride {:?}", v.size, v.stride));
    }
    let es = dtype.size_in_bytes();
    let numel: usize = v.size.iter().product();
    let mut bytes = Vec::with_capacity(numel * es);
    if numel > 0 {
        // The last element's storage index bounds every other one.
        let last = v.offset
            + v.size
                .iter()
                .zip(&v.stride)
                .map(|(n, s)| (n - 1) * s)
                .sum::<usize>();
        if (last + 1) * es > storage.len() {
            return Err(format!(
                "the view ends at element {last}, past its storage of {} elements",
                storage.len() / es
            ));
        }
        let mut idx = vec![0usize; v.size.len()];
        for _ in 0..numel {
            let at = v.offset + idx.iter().zip(&v.stride).map(|(i, s)| i * s).sum::<usize>();
            bytes.extend_from_slice(&storage[at * es..(at + 1) * es]);
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < v.size[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
    }
    Tensor::from_raw_buffer(&bytes, dtype, &v.size, &Device::Cpu).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn here(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pretrained")
            .join(name)
    }

    /// Every layout of `layouts_legacy.pth` (tests/fixtures/pretrained/generate.py --legacy)
    /// reads as PyTorch reads it: shapes, dtypes and values (`layouts.json`), bit for bit.
    #[test]
    fn legacy_tensors_read_as_pytorch_reads_them() {
        let path = here("layouts_legacy.pth");
        assert!(is_legacy(&path).unwrap());
        assert!(!is_legacy(&here("cnn.pth")).unwrap(), "a zip file");
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(here("layouts.json")).unwrap()).unwrap();
        let want = want["tensors"].as_object().unwrap();
        let got: HashMap<String, Tensor> = read_all_with_key(&path, None)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got.len(), want.len(), "{:?}", got.keys());
        for (name, w) in want {
            let t = &got[name];
            let shape: Vec<usize> = w["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(t.dims(), shape.as_slice(), "{name}");
            let dtype = match w["dtype"].as_str().unwrap() {
                "float32" => DType::F32,
                "float64" => DType::F64,
                "float16" => DType::F16,
                "bfloat16" => DType::BF16,
                "int64" => DType::I64,
                "uint8" => DType::U8,
                d => panic!("{d}"),
            };
            assert_eq!(t.dtype(), dtype, "{name}");
            let values: Vec<f64> = t
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            let expected: Vec<f64> = w["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(values, expected, "{name}");
        }
    }

    /// A file cut inside its storages, or inside its pickles, is refused with the path and
    /// what is wrong.
    #[test]
    fn damaged_legacy_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(here("layouts_legacy.pth")).unwrap();
        let cut = dir.path().join("cut.pth");
        // The last storage is the 0-d tensor's: 8 bytes of count, then 4 of data.
        std::fs::write(&cut, &bytes[..bytes.len() - 2]).unwrap();
        let e = read_all_with_key(&cut, None).unwrap_err().to_string();
        assert!(e.contains("cut.pth") && e.contains("cut short"), "{e}");
        let head = dir.path().join("head.pth");
        std::fs::write(&head, &bytes[..40]).unwrap();
        let e = read_all_with_key(&head, None).unwrap_err().to_string();
        assert!(e.contains("head.pth") && e.contains("legacy"), "{e}");
    }
}
