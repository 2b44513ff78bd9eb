//! Output: aligned tables for people, JSON (`--json`) for scripts. Keys and values are
//! shown as text when printable, with `\xNN` escapes otherwise.

use serde_json::Value;

/// Bytes as readable text: printable ASCII as is, everything else `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_graphic() || byte == b' ' {
            if byte == b'\\' {
                text.push('\\');
            }
            text.push(byte as char);
        } else {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

/// A table: a header row and data rows, every row as many cells as the header.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: Vec<&'static str>) -> Table {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(
            cells.len(),
            self.header.len(),
            "a row has one cell per column"
        );
        self.rows.push(cells);
    }

    /// The table as aligned text.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut out = vec![line(self.header.iter().map(|h| h.to_string()).collect())];
        out.extend(self.rows.iter().map(|row| line(row.clone())));
        out.join("\n")
    }
}

/// Prints `table` or, with `json`, the JSON value.
pub fn print(json: bool, table: Table, value: Value) {
    if json {
        println!("{value}");
    } else {
        println!("{}", table.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_escape_and_tables_align() {
        assert_eq!(escape(b"ab c"), "ab c");
        assert_eq!(escape(b"a\x00\xff\\"), "a\\x00\\xff\\\\");
        let mut table = Table::new(vec!["ID", "NAME"]);
        table.row(vec!["1".into(), "x".into()]);
        table.row(vec!["100".into(), "yy".into()]);
        assert_eq!(table.render(), "ID   NAME\n1    x\n100  yy");
    }
}
