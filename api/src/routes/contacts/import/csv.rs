//! The CSV reader of contact imports (RFC 4180): fields separated by `,`, records by LF or
//! CRLF, fields in double quotes may hold commas, line breaks and doubled quotes (`""`).
//! A field that does not start with a quote is taken as written (a quote inside it is text).
//! Rows are numbered from 1 (the header), blank lines included (so a simple file's row
//! numbers are its line numbers); a blank line (or one of empty cells only) is skipped.
//!
//! [`check`] is the whole-file check the request runs before anything is stored; the runner
//! reads the same text again with [`Reader`].

use std::borrow::Cow;

/// The UTF-8 byte order mark, accepted and skipped.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A problem that refuses the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Not UTF-8 from this row on.
    Encoding { row: u32, message: String },
    /// Malformed CSV at this row.
    Syntax { row: u32, message: String },
    /// More data rows than allowed.
    TooManyRows { max: usize },
    /// No header row, or a header that is not usable.
    Header(String),
}

/// A file that passed [`check`]: its text (without a BOM) and the number of data rows.
#[derive(Debug)]
pub struct Checked<'a> {
    pub text: &'a str,
    pub header: Vec<String>,
    pub data_rows: usize,
}

/// The file's text without its BOM, if it is UTF-8; else the row of the first bad byte.
pub fn text(bytes: &[u8]) -> Result<&str, FileError> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(FileError::Encoding {
            row: 1,
            message: "the file is UTF-16; save it as CSV UTF-8".into(),
        });
    }
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let good = e.valid_up_to();
            let prefix = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
            let row = row_containing_end(prefix);
            Err(FileError::Encoding {
                row,
                message: format!(
                    "row {row} is not UTF-8 (byte 0x{:02X}); the file mixes encodings or is not \
                     UTF-8: save it as CSV UTF-8",
                    bytes[good]
                ),
            })
        }
    }
}

/// The row the byte right after `prefix` belongs to.
fn row_containing_end(prefix: &str) -> u32 {
    let mut r = Reader::new(prefix);
    let mut fields = Vec::new();
    loop {
        match r.next_record(&mut fields) {
            Ok(Some(_)) => {}
            // An unterminated quote: the bad byte is inside that row's quoted field.
            Ok(None) | Err(_) => return r.row_of_next_byte(),
        }
    }
}

/// The whole-file check: UTF-8, CSV syntax, a header, at most `max_rows` data rows.
pub fn check(bytes: &[u8], max_rows: usize) -> Result<Checked<'_>, FileError> {
    let text = text(bytes)?;
    let mut r = Reader::new(text);
    let mut fields = Vec::new();
    let header: Vec<String> = match r.next_record(&mut fields).map_err(FileError::from)? {
        Some(_) => fields.iter().map(|f| f.to_string()).collect(),
        None => {
            return Err(FileError::Header(
                "the file is empty: a header row is required".into(),
            ))
        }
    };
    let mut data_rows = 0usize;
    while r
        .next_record(&mut fields)
        .map_err(FileError::from)?
        .is_some()
    {
        data_rows += 1;
        if data_rows > max_rows {
            return Err(FileError::TooManyRows { max: max_rows });
        }
    }
    Ok(Checked {
        text,
        header,
        data_rows,
    })
}

/// A syntax error of the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub row: u32,
    pub message: &'static str,
}

impl From<SyntaxError> for FileError {
    fn from(e: SyntaxError) -> Self {
        FileError::Syntax {
            row: e.row,
            message: format!("row {}: {}", e.row, e.message),
        }
    }
}

/// Reads records from the text of a CSV file.
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
    /// The number of the next record to start.
    next_row: u32,
    /// Whether the last record read ended with a line break.
    ended_line: bool,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            pos: 0,
            next_row: 1,
            ended_line: true,
        }
    }

    /// The row of the byte after what was read.
    fn row_of_next_byte(&self) -> u32 {
        if self.ended_line {
            self.next_row
        } else {
            self.next_row.saturating_sub(1).max(1)
        }
    }

    /// The next non-blank record into `fields` and its row number; `None` at the end.
    pub fn next_record(
        &mut self,
        fields: &mut Vec<Cow<'a, str>>,
    ) -> Result<Option<u32>, SyntaxError> {
        loop {
            if self.pos >= self.text.len() {
                return Ok(None);
            }
            let row = self.next_row;
            self.next_row += 1;
            self.read_record(row, fields)?;
            if fields.iter().any(|f| !f.is_empty()) {
                return Ok(Some(row));
            }
        }
    }

    fn read_record(&mut self, row: u32, fields: &mut Vec<Cow<'a, str>>) -> Result<(), SyntaxError> {
        fields.clear();
        self.ended_line = false;
        let text = self.text;
        let b = text.as_bytes();
        loop {
            let field: Cow<'a, str>;
            if b.get(self.pos) == Some(&b'"') {
                let mut owned: Option<String> = None;
                let mut seg = self.pos + 1;
                let mut at = seg;
                loop {
                    let Some(q) = b[at..].iter().position(|&c| c == b'"').map(|i| at + i) else {
                        // The row is the one the quote opened in.
                        self.pos = b.len();
                        return Err(SyntaxError {
                            row,
                            message: "a quoted field is not closed (unterminated quote)",
                        });
                    };
                    if b.get(q + 1) == Some(&b'"') {
                        owned
                            .get_or_insert_with(String::new)
                            .push_str(&text[seg..=q]);
                        seg = q + 2;
                        at = seg;
                        continue;
                    }
                    field = match owned {
                        Some(mut s) => {
                            s.push_str(&text[seg..q]);
                            Cow::Owned(s)
                        }
                        None => Cow::Borrowed(&text[seg..q]),
                    };
                    self.pos = q + 1;
                    break;
                }
                match b.get(self.pos) {
                    None | Some(b',' | b'\n') => {}
                    Some(b'\r') if matches!(b.get(self.pos + 1), Some(b'\n') | None) => {}
                    Some(_) => {
                        self.pos = b.len();
                        return Err(SyntaxError {
                            row,
                            message: "a closing quote is followed by something other than a comma or a line break",
                        });
                    }
                }
            } else {
                let start = self.pos;
                let end = b[start..]
                    .iter()
                    .position(|&c| c == b',' || c == b'\n')
                    .map_or(b.len(), |i| start + i);
                let mut stop = end;
                if (end == b.len() || b[end] == b'\n') && stop > start && b[stop - 1] == b'\r' {
                    stop -= 1;
                }
                field = Cow::Borrowed(&text[start..stop]);
                self.pos = if end < b.len() && b[end] == b'\n' {
                    // Leave the line break to the delimiter step below.
                    stop
                } else {
                    end
                };
            }
            fields.push(field);
            match b.get(self.pos) {
                None => return Ok(()),
                Some(b',') => self.pos += 1,
                Some(b'\r') => {
                    // CRLF (or a final CR).
                    self.pos += if b.get(self.pos + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                    self.ended_line = true;
                    return Ok(());
                }
                Some(b'\n') => {
                    self.pos += 1;
                    self.ended_line = true;
                    return Ok(());
                }
                Some(_) => unreachable!("a field ends at a delimiter"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<(u32, Vec<String>)>, SyntaxError> {
        let mut r = Reader::new(text);
        let mut f = Vec::new();
        let mut out = Vec::new();
        while let Some(row) = r.next_record(&mut f)? {
            out.push((row, f.iter().map(|s| s.to_string()).collect()));
        }
        Ok(out)
    }

    fn rows(text: &str) -> Vec<(u32, Vec<String>)> {
        all(text).expect("valid CSV")
    }

    #[test]
    fn fields_records_and_line_endings() {
        let want = vec![
            (1, vec!["a".to_string(), "b".into()]),
            (2, vec!["1".into(), "".into()]),
            (3, vec!["".into(), "2".into()]),
        ];
        assert_eq!(rows("a,b\n1,\n,2\n"), want);
        assert_eq!(rows("a,b\r\n1,\r\n,2\r\n"), want);
        assert_eq!(rows("a,b\r\n1,\r\n,2"), want);
        assert_eq!(rows("a,b\n1,\n,2"), want);
    }

    #[test]
    fn quotes() {
        assert_eq!(
            rows("a,b\n\"x, \"\"y\"\"\nz\",\"\"\r\n\"q\"\n"),
            vec![
                (1, vec!["a".to_string(), "b".into()]),
                (2, vec!["x, \"y\"\nz".into(), "".into()]),
                (3, vec!["q".into()]),
            ]
        );
        // A quote inside an unquoted field is text.
        assert_eq!(
            rows("a\"b,c\n"),
            vec![(1, vec!["a\"b".to_string(), "c".into()])]
        );
        let e = all("a\n1\n\"open,\n2\n").expect_err("unterminated");
        assert_eq!(e.row, 3);
        let e = all("a\n\"x\"y\n").expect_err("garbage after quote");
        assert_eq!(e.row, 2);
    }

    #[test]
    fn blank_lines_are_skipped_but_numbered() {
        assert_eq!(
            rows("a,b\n\n,\n1,2\n\r\n"),
            vec![
                (1, vec!["a".to_string(), "b".into()]),
                (4, vec!["1".into(), "2".into()])
            ]
        );
    }

    #[test]
    fn whole_file_checks() {
        let c = check(b"\xEF\xBB\xBFphone,name\n+1,a\n\n+2,b\n", 2).expect("ok");
        assert_eq!(c.header, vec!["phone", "name"]);
        assert_eq!(c.data_rows, 2);
        assert_eq!(
            check(b"phone\n1\n2\n3\n", 2).err(),
            Some(FileError::TooManyRows { max: 2 })
        );
        match check(b"phone,name\n+1,a\n+2,\"caf\xE9\"\n", 10).err() {
            Some(FileError::Encoding { row, .. }) => assert_eq!(row, 3),
            other => panic!("{other:?}"),
        }
        match check(b"phone\n\"+1\n\xE9\n", 10).err() {
            Some(FileError::Encoding { row, .. }) => assert_eq!(row, 2),
            other => panic!("{other:?}"),
        }
        match check(b"phone\n+1\n\xE9", 10).err() {
            Some(FileError::Encoding { row, .. }) => assert_eq!(row, 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check(b"\xFF\xFEp\0", 10).err(),
            Some(FileError::Encoding { .. })
        ));
        assert!(matches!(check(b"", 10).err(), Some(FileError::Header(_))));
        assert!(matches!(
            check(b"phone\n\"x", 10).err(),
            Some(FileError::Syntax { row: 2, .. })
        ));
    }
}
