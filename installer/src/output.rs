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

    /// Aligned columns, header first, fitted to the terminal when stdout is one (cells wrap,
    /// at word boundaries where they can); as wide as the content otherwise, so pipes and files
    /// get whole lines.
    pub fn render_text(&self) -> String {
        self.render_text_width(None)
    }

    /// [`Table::render_text`] with an explicit width (`None`: the terminal's, if any).
    pub fn render_text_width(&self, width: Option<u16>) -> String {
        let n = self.header.len();
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
            .set_header(self.header.iter().map(comfy_table::Cell::new));
        if let Some(w) = width {
            t.force_no_tty().set_width(w);
        }
        for r in &self.rows {
            t.add_row(r.iter().take(n).map(comfy_table::Cell::new));
        }
        // Two spaces between columns, none at the edges: the layout of the plain tables before.
        // When the terminal is too narrow, cells wrap, but never a header word: a column keeps at
        // least the width of its header's longest word.
        for (c, h) in t.column_iter_mut().zip(&self.header) {
            c.set_padding((0, 2));
            let word = h.split_whitespace().map(|w| w.chars().count()).max().unwrap_or(0);
            let min = u16::try_from(word + 2).unwrap_or(u16::MAX);
            c.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(min)));
        }
        let mut out = String::new();
        for line in t.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV (the `csv` crate's writer: quotes what needs quoting).
    pub fn render_csv(&self) -> std::io::Result<String> {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(vec![]);
        for r in std::iter::once(&self.header).chain(&self.rows) {
            w.write_record(r).map_err(std::io::Error::other)?;
        }
        let bytes = w.into_inner().map_err(|e| std::io::Error::other(e.to_string()))?;
        String::from_utf8(bytes).map_err(std::io::Error::other)
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
        Output::Csv => out.write_all(table.render_csv()?.as_bytes())?,
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
        assert_eq!(t.render_csv().expect("csv"), "A,LONGER\n\"x,y\",1\n\"quote\"\"d\",2\n");
    }

    #[test]
    fn text_wraps_to_the_width_it_is_given() {
        let mut t = Table::new(["TARGET", "REASON"]);
        t.row(["111111111111/us-east-1", "the rule is disabled and the DLQ holds seven events the detector failed on"]);
        let narrow = t.render_text_width(Some(60));
        assert!(narrow.lines().count() > 2, "{narrow}");
        assert!(narrow.lines().all(|l| l.chars().count() <= 60), "{narrow}");
        // Every word survives the wrapping.
        for w in ["disabled", "seven", "failed"] {
            assert!(narrow.contains(w), "{narrow}");
        }
        let wide = t.render_text_width(Some(400));
        assert_eq!(wide.lines().count(), 2, "{wide}");
    }

    #[test]
    fn many_columns_at_80_wrap_cells_but_not_header_words() {
        let header =
            ["TIME", "SEVERITY", "ACCESS KEY", "SEEN FROM", "TRUSTED", "PRINCIPAL", "API", "ACCOUNT", "REGION"];
        let mut t = Table::new(header);
        t.row([
            "2024-03-12T09:14:02Z",
            "HIGH",
            "ASIAY34FZKBOKMUTVV7A",
            "203.0.113.66",
            "54.210.33.17",
            "arn:aws:iam::111122223333:role/web-app",
            "sts:GetCallerIdentity",
            "111122223333",
            "us-east-1",
        ]);
        let text = t.render_text_width(Some(80));
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        let head: String = text.lines().take(2).collect::<Vec<_>>().join(" ");
        for h in ["SEVERITY", "PRINCIPAL", "ACCOUNT", "REGION", "TRUSTED"] {
            assert!(head.contains(h), "header word {h} split:\n{text}");
        }
        let flat: String = text.split_whitespace().collect();
        assert!(flat.contains("HIGH"), "{text}");
    }
}
