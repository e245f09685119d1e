//! Figures, the goals they are held against, the medians of several runs and the final table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::median;

/// A goal a figure is held against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "limit", rename_all = "snake_case")]
pub enum Goal {
    /// The figure must be at most this.
    AtMost(f64),
}

impl Goal {
    /// Whether `value` meets the goal.
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Goal::AtMost(limit) => value <= limit + f64::EPSILON * limit.abs().max(1.0),
        }
    }
}

/// One measured figure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    /// The section it belongs to, e.g. `1 api calls`.
    pub section: String,
    /// What it is, e.g. `writes per new stack`.
    pub name: String,
    /// The value; `None` when it could not be measured (then `note` says why).
    pub value: Option<f64>,
    /// Its unit: `requests`, `ms`, `s`, `x`, `%`, `MiB`, `B`, or empty for a count.
    pub unit: String,
    /// The goal, if any.
    pub goal: Option<Goal>,
    /// A note printed under the table (a breakdown, a reason).
    pub note: Option<String>,
}

impl Figure {
    /// A figure without a goal.
    pub fn new(section: &str, name: &str, value: f64, unit: &str) -> Self {
        Figure {
            section: section.to_owned(),
            name: name.to_owned(),
            value: Some(value),
            unit: unit.to_owned(),
            goal: None,
            note: None,
        }
    }

    /// A figure that could not be measured.
    pub fn missing(section: &str, name: &str, unit: &str, why: impl Into<String>) -> Self {
        Figure {
            value: None,
            note: Some(why.into()),
            ..Figure::new(section, name, 0.0, unit)
        }
    }

    /// Holds the figure against `goal`.
    pub fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Whether the goal is met: `None` without a goal or a value.
    pub fn met(&self) -> Option<bool> {
        Some(self.goal?.met_by(self.value?))
    }
}

/// The figures of several runs combined: per figure, the median of the runs that measured it;
/// the note of the first run that has one. Figures keep the order of their first appearance.
pub fn medians(runs: &[Vec<Figure>]) -> Vec<Figure> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut by_key: BTreeMap<(String, String), Vec<&Figure>> = BTreeMap::new();
    for figure in runs.iter().flatten() {
        let key = (figure.section.clone(), figure.name.clone());
        if !by_key.contains_key(&key) {
            order.push(key.clone());
        }
        by_key.entry(key).or_default().push(figure);
    }
    order
        .into_iter()
        .filter_map(|key| {
            let figures = by_key.get(&key)?;
            let first = figures.first()?;
            let values: Vec<f64> = figures.iter().filter_map(|f| f.value).collect();
            Some(Figure {
                value: median(&values),
                note: figures.iter().find_map(|f| f.note.clone()),
                ..(*first).clone()
            })
        })
        .collect()
}

/// Formats a value in its unit.
pub fn format_value(value: Option<f64>, unit: &str) -> String {
    let Some(v) = value else {
        return "n/a".into();
    };
    match unit {
        "ms" => format!("{v:.1} ms"),
        "s" => format!("{v:.2} s"),
        "x" => format!("{v:.2}x"),
        "%" => format!("{v:+.1} %"),
        "MiB" => format!("{v:.1} MiB"),
        "B" => format!("{v:.0} B"),
        "" => format!("{v:.0}"),
        other => format!("{v:.0} {other}"),
    }
}

fn format_goal(goal: Option<Goal>, unit: &str) -> String {
    match goal {
        None => String::new(),
        Some(Goal::AtMost(limit)) => format!("≤ {}", format_value(Some(limit), unit)),
    }
}

/// The table: section, figure, value, goal, met; then the notes, numbered.
pub fn render(figures: &[Figure], runs: usize) -> String {
    let header = [
        "section".to_owned(),
        "figure".to_owned(),
        if runs > 1 {
            format!("median of {runs} runs")
        } else {
            "value".to_owned()
        },
        "goal".to_owned(),
        "met".to_owned(),
    ];
    let mut notes = Vec::new();
    let rows: Vec<[String; 5]> = figures
        .iter()
        .map(|f| {
            let mut name = f.name.clone();
            if let Some(note) = &f.note {
                notes.push(note.clone());
                let _ = write!(name, " [{}]", notes.len());
            }
            [
                f.section.clone(),
                name,
                format_value(f.value, &f.unit),
                format_goal(f.goal, &f.unit),
                match f.met() {
                    Some(true) => "met".into(),
                    Some(false) => "NOT MET".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", padded.join(" | ").trim_end());
    };
    line(&header);
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
    for (i, note) in notes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {note}", i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_are_met_or_not() {
        let at_floor = Figure::new("1", "writes", 13.0, "requests").goal(Goal::AtMost(13.0));
        assert_eq!(at_floor.met(), Some(true));
        let over = Figure::new("1", "writes", 14.0, "requests").goal(Goal::AtMost(13.0));
        assert_eq!(over.met(), Some(false));
        assert_eq!(Figure::new("1", "reads", 0.0, "").met(), None);
        let missing = Figure::missing("4", "p99", "ms", "no sample").goal(Goal::AtMost(250.0));
        assert_eq!(missing.met(), None);
    }

    #[test]
    fn medians_of_runs_keep_order_and_notes() {
        let run = |v: f64, note: Option<&str>| {
            let mut a = Figure::new("2", "operator", v, "s");
            a.note = note.map(str::to_owned);
            vec![a, Figure::new("1", "writes", 13.0, "requests")]
        };
        let combined = medians(&[run(3.0, None), run(1.0, Some("breakdown")), run(2.0, None)]);
        assert_eq!(combined.len(), 2);
        assert_eq!(combined[0].name, "operator");
        assert_eq!(combined[0].value, Some(2.0));
        assert_eq!(combined[0].note.as_deref(), Some("breakdown"));
        assert_eq!(combined[1].value, Some(13.0));
    }

    #[test]
    fn the_table_lists_every_figure_with_its_verdict() {
        let figures = vec![
            Figure::new("4 status", "p99", 120.0, "ms").goal(Goal::AtMost(250.0)),
            Figure::new("6 down", "slowdown", 25.0, "%")
                .goal(Goal::AtMost(10.0))
                .note("prometheus-2 stopped"),
            Figure::missing("7 memory", "per child", "B", "not measured"),
        ];
        let table = render(&figures, 3);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("median of 3 runs"), "{table}");
        assert!(lines[2].contains("120.0 ms") && lines[2].contains("≤ 250.0 ms"));
        assert!(lines[2].trim_end().ends_with("met |"), "{table}");
        assert!(lines[3].contains("+25.0 %") && lines[3].contains("NOT MET"));
        assert!(lines[3].contains("slowdown [1]"));
        assert!(lines[4].contains("n/a") && lines[4].contains("[2]"));
        assert_eq!(lines[5], "[1] prometheus-2 stopped");
        assert_eq!(lines[6], "[2] not measured");
    }
}
