//! Aligned text tables for `list` and `list --remote`.

/// Pads columns so they line up; each cell on its line, control
/// characters escaped.
pub fn table<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let rows: Vec<[String; N]> =
        rows.iter().map(|r| r.clone().map(|c| super::human::one_line(&c).into_owned())).collect();
    let mut width = [0usize; N];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

/// The row of a snapshot whose manifest cannot be read: its id, an unknown
/// age, and why, the other columns empty.
pub fn damaged_row<const N: usize>(id: &str, damaged: &str) -> [String; N] {
    let mut row: [String; N] = std::array::from_fn(|_| String::new());
    for (cell, text) in row.iter_mut().zip([id.to_string(), "?".into(), format!("DAMAGED: {damaged}")]) {
        *cell = text;
    }
    row
}
