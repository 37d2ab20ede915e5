//! Finds the line of a JSON pointer in YAML text, so errors found after parsing (schema,
//! semantic) still point at a line. Handles block-style YAML, which is what sources.d
//! files are; for anything it cannot follow it returns the deepest line it found.

/// The 1-based line of `pointer` (e.g. `/queries/daily/sql`) in `text`, if found.
pub fn locate(text: &str, pointer: &str) -> Option<usize> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for raw_segment in pointer.split('/').skip(1) {
        let segment = raw_segment.replace("~1", "/").replace("~0", "~");
        let index: Option<usize> = segment.parse().ok();
        let mut child_indent = None;
        let mut items = 0;
        let mut hit = None;
        for (number, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            // Sequence items may sit at the parent key's own indentation.
            let is_item = trimmed.starts_with("- ") || trimmed == "-";
            if let Some(parent) = parent_indent {
                if indent < parent || (indent == parent && !(is_item && index.is_some())) {
                    break;
                }
            }
            if *child_indent.get_or_insert(indent) != indent {
                continue;
            }
            let matched = match index {
                Some(wanted) if is_item => {
                    items += 1;
                    items - 1 == wanted
                }
                _ => key_of(trimmed) == Some(segment.as_str()),
            };
            if matched {
                hit = Some((number, indent, is_item));
                break;
            }
        }
        let Some((number, indent, is_item)) = hit else {
            break;
        };
        found = Some(number + 1);
        if is_item {
            // `- key: value` opens a mapping on the same line: blank out the dash and
            // search from this line, with the item's keys two columns in.
            lines[number] = lines[number].replacen('-', " ", 1);
            start = number;
        } else {
            start = number + 1;
        }
        parent_indent = Some(indent);
    }
    found
}

fn key_of(trimmed: &str) -> Option<&str> {
    let (key, _) = trimmed.split_once(':')?;
    Some(key.trim().trim_matches(|c| c == '"' || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::locate;

    const DOC: &str = "id: demo\nqueries:\n  summary:\n    sql: SELECT 1\n  daily:\n    # note\n    sql: |\n      SELECT 2\nfilters:\n  kind:\n    type: enum\n    values:\n    - a\n    - b\nlist:\n  - name: x\n    other: y\n  - name: z\n";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(DOC, "/id"), Some(1));
        assert_eq!(locate(DOC, "/queries/daily/sql"), Some(7));
        assert_eq!(locate(DOC, "/queries/summary/sql"), Some(4));
        assert_eq!(locate(DOC, "/filters/kind/values/1"), Some(14));
        assert_eq!(locate(DOC, "/list/0/other"), Some(17));
        assert_eq!(locate(DOC, "/list/1/name"), Some(18));
    }

    #[test]
    fn missing_keys_fall_back_to_the_deepest_parent() {
        assert_eq!(locate(DOC, "/queries/clients"), Some(2));
        assert_eq!(locate(DOC, "/nothing"), None);
        assert_eq!(locate(DOC, ""), None);
    }
}
