//! Samples, medians and percentiles.

use serde::{Deserialize, Serialize};

/// A set of measurements (kept whole in the raw results).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn new(values: Vec<f64>) -> Samples {
        Samples(values)
    }

    /// The `q` quantile (0..=1) by nearest rank; `None` when empty or when
    /// every value is NaN.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut v: Vec<f64> = self.0.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    }

    pub fn min(&self) -> Option<f64> {
        self.0
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .reduce(f64::min)
    }

    pub fn max(&self) -> Option<f64> {
        self.0
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .reduce(f64::max)
    }
}

/// The median of `values` (NaNs ignored); `None` when there is none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_medians() {
        let s = Samples::new((1..=100).map(f64::from).collect());
        assert_eq!(s.quantile(0.5), Some(50.0));
        assert_eq!(s.quantile(0.99), Some(99.0));
        assert_eq!(s.quantile(1.0), Some(100.0));
        assert_eq!(s.quantile(0.0), Some(1.0));
        assert_eq!(median(&s.0), Some(50.5));
        assert_eq!((s.min(), s.max()), (Some(1.0), Some(100.0)));
        for (values, want) in [
            (vec![], None),
            (vec![f64::NAN], None),
            (vec![3.0], Some(3.0)),
            (vec![3.0, 1.0, 2.0], Some(2.0)),
            (vec![4.0, 1.0, f64::NAN, 2.0, 3.0], Some(2.5)),
        ] {
            assert_eq!(median(&values), want, "{values:?}");
        }
        assert_eq!(Samples::default().quantile(0.5), None);
    }
}
