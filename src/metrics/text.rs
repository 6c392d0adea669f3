//! The Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! Owns: `# HELP` / `# TYPE` lines, label-value escaping (`\\`, `\"`, `\n`), help escaping
//! (`\\`, `\n`), number formatting (`NaN`, `+Inf`, `-Inf`, integers exactly), and histograms as
//! cumulative `_bucket{le=...}` lines ending in `le="+Inf"`, then `_sum` and `_count`.
//!
//! Does not: know metric names or where values come from.
//!
//! Invariants: a family's HELP/TYPE are written once, before its samples (the caller groups
//! samples by family); a histogram's `+Inf` bucket equals its `_count`.

use std::fmt::Write as _;

use crate::stats::histogram::{BOUNDS_US, HistogramSnapshot, secs};

/// The content type of the page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An exact integer.
    Int(u64),
    /// A float.
    Float(f64),
}

/// The page being written.
#[derive(Debug, Default)]
pub struct Page {
    out: String,
}

/// Appends `v` as Prometheus expects a float.
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Appends a label value with `\`, `"` and newline escaped.
pub fn push_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Page {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }

    /// Starts a family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            push_label_value(&mut self.out, v);
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn value(&mut self, v: Value) {
        self.out.push(' ');
        match v {
            Value::Int(n) => {
                let _ = write!(self.out, "{n}");
            }
            Value::Float(f) => push_f64(&mut self.out, f),
        }
        self.out.push('\n');
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: Value) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.value(v);
    }

    /// The lines of one histogram (durations in seconds).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let cumulative = h.cumulative();
        let mut le = String::new();
        for (i, &count) in cumulative.iter().enumerate() {
            le.clear();
            match BOUNDS_US.get(i) {
                Some(&bound) => push_f64(&mut le, secs(bound)),
                None => le.push_str("+Inf"),
            }
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            self.value(Value::Int(count));
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        self.value(Value::Float(secs(h.sum_us)));
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        self.value(Value::Int(cumulative.last().copied().unwrap_or(0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::histogram::Histogram;
    use std::time::Duration;

    #[test]
    fn samples_and_escaping() {
        let mut p = Page::new();
        p.family("x_total", Kind::Counter, "Line one\nback\\slash");
        p.sample(
            "x_total",
            &[("database", "a\"b\\c\nd"), ("user", "u")],
            Value::Int(3),
        );
        p.sample("x_total", &[], Value::Float(f64::INFINITY));
        p.family("g", Kind::Gauge, "G.");
        p.sample("g", &[], Value::Float(0.25));
        p.sample("g", &[], Value::Float(f64::NAN));
        p.sample("g", &[], Value::Float(f64::NEG_INFINITY));
        p.sample("g", &[], Value::Float(1e-7));
        assert_eq!(
            p.finish(),
            "# HELP x_total Line one\\nback\\\\slash\n# TYPE x_total counter\n\
             x_total{database=\"a\\\"b\\\\c\\nd\",user=\"u\"} 3\nx_total +Inf\n\
             # HELP g G.\n# TYPE g gauge\ng 0.25\ng NaN\ng -Inf\ng 0.0000001\n"
        );
    }

    #[test]
    fn histogram_lines_are_cumulative() {
        let h = Histogram::default();
        h.record(Duration::from_micros(30));
        h.record(Duration::from_micros(150));
        h.record(Duration::from_secs(90));
        let mut p = Page::new();
        p.family("d_seconds", Kind::Histogram, "D.");
        p.histogram("d_seconds", &[("database", "db")], &h.snapshot());
        let text = p.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "d_seconds_bucket{database=\"db\",le=\"0.00005\"} 1"
        );
        assert_eq!(
            lines[3],
            "d_seconds_bucket{database=\"db\",le=\"0.0001\"} 1"
        );
        assert_eq!(
            lines[4],
            "d_seconds_bucket{database=\"db\",le=\"0.0002\"} 2"
        );
        assert!(text.contains("d_seconds_bucket{database=\"db\",le=\"0.0075\"} 2\n"));
        assert!(text.contains("d_seconds_bucket{database=\"db\",le=\"60\"} 2\n"));
        assert!(text.contains("d_seconds_bucket{database=\"db\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("d_seconds_sum{database=\"db\"} 90.00018\n"));
        assert!(text.ends_with("d_seconds_count{database=\"db\"} 3\n"));
        assert_eq!(lines.len(), 2 + BOUNDS_US.len() + 1 + 2);
    }
}
