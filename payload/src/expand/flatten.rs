//! Text hygiene: [`flatten_text`] applies Meta's whitespace rules to text parameters.

use std::borrow::Cow;

/// Flattens a text parameter to Meta's rules: a run of whitespace that contains a newline,
/// carriage return or tab becomes one space, and a run of more than 4 spaces becomes one space.
/// Returns the input borrowed when it is already clean.
pub fn flatten_text(s: &str) -> Cow<'_, str> {
    let mut run = 0usize;
    let mut dirty = false;
    for &b in s.as_bytes() {
        match b {
            b'\n' | b'\r' | b'\t' => {
                dirty = true;
                break;
            }
            b' ' => {
                run += 1;
                if run > 4 {
                    dirty = true;
                    break;
                }
            }
            _ => run = 0,
        }
    }
    if !dirty {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut spaces = 0usize;
    let mut ctrl = false;
    let flush = |out: &mut String, spaces: &mut usize, ctrl: &mut bool| {
        if *ctrl || *spaces > 4 {
            out.push(' ');
        } else {
            for _ in 0..*spaces {
                out.push(' ');
            }
        }
        *spaces = 0;
        *ctrl = false;
    };
    for c in s.chars() {
        match c {
            ' ' => spaces += 1,
            '\n' | '\r' | '\t' => {
                spaces += 1;
                ctrl = true;
            }
            _ => {
                if spaces > 0 {
                    flush(&mut out, &mut spaces, &mut ctrl);
                }
                out.push(c);
            }
        }
    }
    if spaces > 0 {
        flush(&mut out, &mut spaces, &mut ctrl);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_rules() {
        let cases = [
            ("plain text", "plain text"),
            ("a\nb", "a b"),
            ("a\r\n\r\nb", "a b"),
            ("a\tb", "a b"),
            ("a    b", "a    b"),
            ("a     b", "a b"),
            ("a  \n  b", "a b"),
            ("end\n", "end "),
            ("ünïcödé\n✓", "ünïcödé ✓"),
        ];
        for (i, want) in cases {
            assert_eq!(flatten_text(i), want, "{i:?}");
        }
        assert!(matches!(flatten_text("clean"), Cow::Borrowed(_)));
    }
}
