//! Finding where a key sits in a YAML text, and the closest valid key to a misspelt one.
//!
//! serde_yaml reports line and column for syntax errors only; for semantic errors (an unknown
//! key, a bad value) we look the key up in the text ourselves so that the message can say
//! `file:line:column`.

/// 1-based line and column of the key `path` (nested mapping keys) in a block-style YAML text.
pub fn locate_path(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let mut min_indent: isize = -1;
    let mut seg = 0;
    for (no, line) in text.lines().enumerate() {
        let Some((indent, key)) = key_of_line(line) else {
            continue;
        };
        if seg > 0 && (indent as isize) <= min_indent {
            // Left the parent mapping without finding the next segment.
            return None;
        }
        if key == path[seg] {
            if seg + 1 == path.len() {
                return Some((no + 1, indent + 1));
            }
            min_indent = indent as isize;
            seg += 1;
        }
    }
    None
}

/// 1-based line and column of the first occurrence of `needle` as a mapping key (the dotted
/// axis keys of a grid, such as `optimizer.lr:`), at or after line `from` (1-based).
pub fn locate_key_text(text: &str, needle: &str, from: usize) -> Option<(usize, usize)> {
    for (no, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let mut search = 0;
        while let Some(pos) = line[search..].find(needle) {
            let at = search + pos;
            let before_ok = at == 0
                || matches!(
                    line.as_bytes()[at - 1],
                    b' ' | b'{' | b',' | b'-' | b'"' | b'\''
                );
            let rest = line[at + needle.len()..].trim_start_matches(['"', '\'']);
            if before_ok && rest.trim_start().starts_with(':') {
                return Some((no + 1, at + 1));
            }
            search = at + needle.len();
        }
    }
    None
}

/// The mapping key on a block-style YAML line, with its indentation (list dashes count as indent).
fn key_of_line(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let mut indent = line.len() - trimmed.len();
    let mut body = trimmed;
    while let Some(rest) = body.strip_prefix("- ") {
        indent += 2;
        body = rest.trim_start();
    }
    let colon = body.find(':')?;
    let key = body[..colon].trim().trim_matches(['"', '\'']);
    if key.is_empty() || key.contains(' ') && !key.contains('.') {
        return None;
    }
    Some((indent, key))
}

/// The candidate closest to `word` (Jaro-Winkler), if it is reasonably close.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(s, _)| *s > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: x\nbase:\n  optimizer:\n    lr: 1\n  method:\n    name: cc\n    lrr: 2\ngrid:\n  optimizer.lr: [1, 2]\n  seed: [0]\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(
            locate_path(TEXT, &["base", "optimizer", "lr"]),
            Some((4, 5))
        );
        assert_eq!(locate_path(TEXT, &["base", "method", "lrr"]), Some((7, 5)));
        assert_eq!(locate_path(TEXT, &["base", "optimizer", "lrr"]), None);
        assert_eq!(locate_path(TEXT, &["grid", "seed"]), Some((10, 3)));
    }

    #[test]
    fn finds_dotted_keys() {
        assert_eq!(locate_key_text(TEXT, "optimizer.lr", 1), Some((9, 3)));
        assert_eq!(locate_key_text(TEXT, "optimizer.lr", 10), None);
    }

    #[test]
    fn suggests_the_closest_key() {
        assert_eq!(closest("lrr", ["lr", "eps", "beta1"]), Some("lr"));
        assert_eq!(closest("zzzzzz", ["lr", "eps"]), None);
    }
}
