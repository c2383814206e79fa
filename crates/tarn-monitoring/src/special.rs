//! The special functions the drift tests need, written as SciPy computes them so that tarn's
//! p-values equal SciPy's (and so Evidently's) to the last digits: the normal distribution
//! function (Cephes' `ndtr`, `erf`, `erfc`) and the chi-square survival function.

const NDTR_P: [f64; 9] = [
    2.461_969_814_735_305e-10,
    5.641_895_648_310_689e-1,
    7.463_210_564_422_699,
    4.863_719_709_856_814e1,
    1.965_208_329_560_771e2,
    5.264_451_949_954_773e2,
    9.345_285_271_719_576e2,
    1.027_551_886_895_157e3,
    5.575_353_353_693_994e2,
];
const NDTR_Q: [f64; 8] = [
    1.322_819_511_547_45e1,
    8.670_721_408_859_897e1,
    3.549_377_788_878_199e2,
    9.757_085_017_432_055e2,
    1.823_909_166_879_097e3,
    2.246_337_608_187_11e3,
    1.656_663_091_941_613_5e3,
    5.575_353_408_177_277e2,
];
const NDTR_R: [f64; 6] = [
    5.641_895_835_477_551e-1,
    1.275_366_707_599_781,
    5.019_050_422_511_805,
    6.160_210_979_930_536,
    7.409_742_699_504_489,
    2.978_866_653_721_002_4,
];
const NDTR_S: [f64; 6] = [
    2.260_528_632_201_172_6,
    9.396_035_249_380_015,
    1.204_895_398_080_966_5e1,
    1.708_144_507_475_659e1,
    9.608_968_090_632_859,
    3.369_076_451_000_815,
];
const NDTR_T: [f64; 5] = [
    9.604_973_739_870_516,
    9.002_601_972_038_427e1,
    2.232_005_345_946_843e3,
    7.003_325_141_128_051e3,
    5.559_230_130_103_949e4,
];
const NDTR_U: [f64; 5] = [
    3.356_171_416_475_031e1,
    5.213_579_497_801_527e2,
    4.594_323_829_709_801e3,
    2.262_900_006_138_909_4e4,
    4.926_739_426_086_359e4,
];
/// The log of the largest double, below which `exp` underflows (Cephes' MAXLOG).
const MAXLOG: f64 = 7.097_827_128_933_84e2;

/// Cephes' `polevl`: the polynomial with the given coefficients, highest power first.
fn polevl(x: f64, coef: &[f64]) -> f64 {
    coef.iter().fold(0.0, |acc, c| acc * x + c)
}

/// Cephes' `p1evl`: as `polevl` with an implied leading coefficient of 1.
fn p1evl(x: f64, coef: &[f64]) -> f64 {
    coef.iter().fold(1.0, |acc, c| acc * x + c)
}

/// The complementary error function.
pub fn erfc(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a.abs();
    if x < 1.0 {
        return 1.0 - erf(a);
    }
    let z = -a * a;
    let under = if a < 0.0 { 2.0 } else { 0.0 };
    if z < -MAXLOG {
        return under;
    }
    let z = z.exp();
    let (p, q) = if x < 8.0 {
        (polevl(x, &NDTR_P), p1evl(x, &NDTR_Q))
    } else {
        (polevl(x, &NDTR_R), p1evl(x, &NDTR_S))
    };
    let mut y = (z * p) / q;
    if a < 0.0 {
        y = 2.0 - y;
    }
    if y == 0.0 {
        under
    } else {
        y
    }
}

/// The error function.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return -erf(-x);
    }
    if x > 1.0 {
        return 1.0 - erfc(x);
    }
    let z = x * x;
    x * polevl(z, &NDTR_T) / p1evl(z, &NDTR_U)
}

/// The standard normal distribution function (SciPy's `norm.cdf`).
pub fn ndtr(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a * std::f64::consts::FRAC_1_SQRT_2;
    let z = x.abs();
    if z < 1.0 {
        0.5 + 0.5 * erf(x)
    } else {
        let y = 0.5 * erfc(z);
        if x > 0.0 {
            1.0 - y
        } else {
            y
        }
    }
}

/// The chi-square distribution's survival function with `dof` degrees of freedom
/// (SciPy's `chi2.sf`): the regularised upper incomplete gamma function Q(dof/2, x/2).
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    statrs::function::gamma::gamma_ur(dof / 2.0, x / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values printed by SciPy 1.17 (`scipy.special.ndtr`, `scipy.stats.chi2.sf`).
    #[test]
    fn normal_distribution_matches_scipy() {
        for (x, want) in [
            (0.0, 0.5),
            (-1.0, 0.15865525393145707),
            (2.5, 0.9937903346742238),
            (-7.5, 3.1908916729108844e-14),
            (-30.0, 4.906713927147908e-198),
        ] {
            let got = ndtr(x);
            assert!(
                ((got - want) / want).abs() < 1e-13,
                "ndtr({x}) = {got}, SciPy {want}"
            );
        }
    }

    #[test]
    fn chi_square_survival_matches_scipy() {
        for (x, dof, want) in [
            (3.0, 2.0, 0.22313016014842982),
            (50.0, 10.0, 2.669083424904495e-07),
            (1000.0, 100.0, 2.3060767380354624e-148),
        ] {
            let got = chi2_sf(x, dof);
            assert!(
                ((got - want) / want).abs() < 1e-9,
                "chi2.sf({x}, {dof}) = {got}, SciPy {want}"
            );
        }
    }
}
