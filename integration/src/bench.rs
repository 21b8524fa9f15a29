//! The benchmark output format of `design/TESTING.md`: one JSON line per figure, with its anchor beside it.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct BenchLine {
    pub bench: String,
    pub metric: String,
    pub simpul: f64,
    pub anchor: String,
    pub anchor_value: f64,
    pub ratio: f64,
    pub runs: usize,
    pub notes: String,
}

impl BenchLine {
    pub fn new(
        bench: &str,
        metric: &str,
        simpul: f64,
        anchor: &str,
        anchor_value: f64,
        runs: usize,
        notes: &str,
    ) -> Self {
        let ratio = if anchor_value == 0.0 { 0.0 } else { round2(simpul / anchor_value) };
        BenchLine {
            bench: bench.into(),
            metric: metric.into(),
            simpul: round2(simpul),
            anchor: anchor.into(),
            anchor_value: round2(anchor_value),
            ratio,
            runs,
            notes: notes.into(),
        }
    }

    pub fn print(&self) {
        println!("{}", serde_json::to_string(self).expect("a bench line serialises"));
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The median of the runs (the mean of the middle two for an even count).
pub fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty(), "median of no runs");
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_ratio() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        let line = BenchLine::new("b", "requests/s", 1840.0, "wireguard-go", 930.0, 3, "n");
        assert_eq!(line.ratio, 1.98);
        let json = serde_json::to_string(&line).unwrap();
        assert!(json.starts_with(r#"{"bench":"b","metric":"requests/s","simpul":1840.0,"anchor":"wireguard-go","#));
    }
}
