//! Rendering results: aligned text tables for people, JSON lines and CSV for machines.

use std::io::Write;

use crate::args::Output;

/// A table: a header and rows of cells.
#[derive(Debug, Default, Clone)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Aligned columns, header first.
    pub fn render_text(&self) -> String {
        let n = self.header.len();
        let mut w = vec![0usize; n];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .take(n)
                .map(|(i, c)| if i + 1 == n { c.clone() } else { format!("{c:<width$}", width = w[i]) })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV.
    pub fn render_csv(&self) -> String {
        let esc = |c: &str| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        };
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            out.push_str(&r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }
}

/// Prints `items` as JSON lines, or `table` as text or CSV, to stdout.
pub fn emit<T: serde::Serialize>(fmt: Output, items: &[T], table: &Table) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match fmt {
        Output::Json => {
            for i in items {
                let line = serde_json::to_string(i).map_err(std::io::Error::other)?;
                writeln!(out, "{line}")?;
            }
        }
        Output::Csv => out.write_all(table.render_csv().as_bytes())?,
        Output::Text => out.write_all(table.render_text().as_bytes())?,
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_csv_escapes() {
        let mut t = Table::new(["A", "LONGER"]);
        t.row(["x,y", "1"]);
        t.row(["quote\"d", "2"]);
        assert_eq!(t.render_text(), "A        LONGER\nx,y      1\nquote\"d  2\n");
        assert_eq!(t.render_csv(), "A,LONGER\n\"x,y\",1\n\"quote\"\"d\",2\n");
    }
}
