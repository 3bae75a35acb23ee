//! The one layout of text tables (`runs`, `status`, `list`, `audit list`, a run's summary):
//! columns two spaces apart, each as wide as its widest cell (by display width, through
//! comfy-table), no borders, no trailing spaces.

use comfy_table::{CellAlignment, Table, presets};

/// How a column's cells sit in it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Align {
    Left,
    /// Numbers: counts, durations.
    Right,
}

/// The table of `rows` under `header` (none when it is empty), one line per row, each line
/// ending in a newline. `align` names each column's alignment (missing ones are left).
pub fn render(header: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    if !header.is_empty() {
        table.set_header(header.to_vec());
    }
    for row in rows {
        table.add_row(row.clone());
    }
    let columns = table.column_count();
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i + 1 == columns { 0 } else { 2 }));
        if align.get(i) == Some(&Align::Right) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_the_widest_cell_and_lines_end_clean() {
        let rows = vec![
            vec![
                "a-much-longer-name".to_owned(),
                "7".to_owned(),
                String::new(),
            ],
            vec!["é".to_owned(), "1234".to_owned(), "x".to_owned()],
        ];
        let text = render(&["name", "n", "note"], &[Align::Left, Align::Right], &rows);
        assert_eq!(
            text,
            "name                   n  note\n\
             a-much-longer-name     7\n\
             é                   1234  x\n"
        );
        assert_eq!(render(&[], &[], &[vec!["a".into(), "b".into()]]), "a  b\n");
    }
}
