//! Sprig's arithmetic: integer functions through spf13/cast (floats truncate), float
//! functions in decimal as Sprig does with shopspring/decimal.

use super::{Functions, arity, arity_min, cast_float, cast_int, parse_go_int, string_arg};
use crate::error::FnError;
use crate::value::Value;

type R = Result<Value, FnError>;

pub(super) fn register(f: &mut Functions) {
    f.builtin("atoi", |_, a| {
        arity("atoi", a, 1)?;
        Ok(Value::Int(string_arg(&a[0]).parse().unwrap_or(0)))
    });
    for name in ["int", "int64"] {
        f.builtin(name, |_, a| {
            arity("int", a, 1)?;
            Ok(Value::Int(to_int(&a[0])))
        });
    }
    f.builtin("float64", |_, a| {
        arity("float64", a, 1)?;
        Ok(Value::Float(cast_float(&a[0])))
    });
    f.builtin("toDecimal", |_, a| {
        arity("toDecimal", a, 1)?;
        Ok(Value::Int(
            i64::from_str_radix(&string_arg(&a[0]), 8).unwrap_or(0),
        ))
    });
    f.builtin("add", |_, a| {
        Ok(Value::Int(
            a.iter().map(cast_int).fold(0i64, i64::wrapping_add),
        ))
    });
    f.builtin("add1", |_, a| {
        arity("add1", a, 1)?;
        Ok(Value::Int(cast_int(&a[0]).wrapping_add(1)))
    });
    f.builtin("sub", |_, a| {
        arity("sub", a, 2)?;
        Ok(Value::Int(cast_int(&a[0]).wrapping_sub(cast_int(&a[1]))))
    });
    f.builtin("mul", |_, a| {
        arity_min("mul", a, 1)?;
        Ok(Value::Int(
            a.iter().map(cast_int).fold(1i64, i64::wrapping_mul),
        ))
    });
    f.builtin("div", |_, a| {
        arity("div", a, 2)?;
        let d = cast_int(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(Value::Int(cast_int(&a[0]).wrapping_div(d)))
    });
    f.builtin("mod", |_, a| {
        arity("mod", a, 2)?;
        let d = cast_int(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(Value::Int(cast_int(&a[0]).wrapping_rem(d)))
    });
    for name in ["max", "biggest"] {
        f.builtin(name, |_, a| {
            arity_min("max", a, 1)?;
            Ok(Value::Int(a.iter().map(cast_int).max().unwrap_or(0)))
        });
    }
    f.builtin("min", |_, a| {
        arity_min("min", a, 1)?;
        Ok(Value::Int(a.iter().map(cast_int).min().unwrap_or(0)))
    });
    f.builtin("addf", |_, a| {
        Ok(Value::Float(decimal_fold(a, 0.0, DecOp::Add)))
    });
    f.builtin("add1f", |_, a| {
        arity("add1f", a, 1)?;
        Ok(Value::Float(decimal_fold(
            &[a[0].clone(), Value::Float(1.0)],
            0.0,
            DecOp::Add,
        )))
    });
    f.builtin("subf", |_, a| {
        arity_min("subf", a, 1)?;
        let first = cast_float(&a[0]);
        Ok(Value::Float(decimal_fold(&a[1..], first, DecOp::Sub)))
    });
    f.builtin("mulf", |_, a| {
        arity_min("mulf", a, 1)?;
        let first = cast_float(&a[0]);
        Ok(Value::Float(decimal_fold(&a[1..], first, DecOp::Mul)))
    });
    f.builtin("divf", |_, a| {
        arity_min("divf", a, 1)?;
        let mut acc = cast_float(&a[0]);
        for d in &a[1..] {
            let d = cast_float(d);
            if d == 0.0 {
                return Err("decimal division by 0".into());
            }
            acc /= d;
        }
        Ok(Value::Float(acc))
    });
    f.builtin("maxf", |_, a| {
        arity_min("maxf", a, 1)?;
        Ok(Value::Float(
            a.iter().map(cast_float).fold(f64::MIN, f64::max),
        ))
    });
    f.builtin("minf", |_, a| {
        arity_min("minf", a, 1)?;
        Ok(Value::Float(
            a.iter().map(cast_float).fold(f64::MAX, f64::min),
        ))
    });
    f.builtin("floor", |_, a| {
        arity("floor", a, 1)?;
        Ok(Value::Float(cast_float(&a[0]).floor()))
    });
    f.builtin("ceil", |_, a| {
        arity("ceil", a, 1)?;
        Ok(Value::Float(cast_float(&a[0]).ceil()))
    });
    f.builtin("round", round);
    f.builtin("randInt", |_, a| {
        arity("randInt", a, 2)?;
        use rand::Rng;
        let (lo, hi) = (cast_int(&a[0]), cast_int(&a[1]));
        if hi <= lo {
            return Err("invalid argument to Intn".into());
        }
        Ok(Value::Int(rand::rng().random_range(lo..hi)))
    });
}

/// spf13/cast's `ToInt`, which Sprig's `int` uses.
fn to_int(v: &Value) -> i64 {
    match v {
        Value::String(s) => parse_go_int(s).unwrap_or(0),
        other => cast_int(other),
    }
}

fn round(_: &mut crate::exec::Exec<'_>, a: &[Value]) -> R {
    arity_min("round", a, 2)?;
    let round_on = a.get(2).map_or(0.5, cast_float);
    let val = cast_float(&a[0]);
    let pow = 10f64.powf(cast_int(&a[1]) as f64);
    let digit = pow * val;
    let frac = digit.fract();
    let r = if frac >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(r / pow))
}

/// An exact decimal: mantissa × 10^-scale.
#[derive(Clone, Copy)]
struct Dec {
    mant: i128,
    scale: u32,
}

impl Dec {
    /// The shortest decimal that reads back as `f`, as decimal.NewFromFloat does.
    fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e')?;
        let e: i32 = e.parse().ok()?;
        let neg = m.starts_with('-');
        let m = m.trim_start_matches('-');
        let (int, frac) = m.split_once('.').unwrap_or((m, ""));
        let digits = format!("{int}{frac}");
        let mut mant: i128 = digits.parse().ok()?;
        let mut scale = frac.len() as i32 - e;
        if scale < 0 {
            mant = mant.checked_mul(10i128.checked_pow((-scale) as u32)?)?;
            scale = 0;
        }
        Some(Dec {
            mant: if neg { -mant } else { mant },
            scale: scale as u32,
        })
    }

    fn align(a: Dec, b: Dec) -> Option<(i128, i128, u32)> {
        let scale = a.scale.max(b.scale);
        let am = a.mant.checked_mul(10i128.checked_pow(scale - a.scale)?)?;
        let bm = b.mant.checked_mul(10i128.checked_pow(scale - b.scale)?)?;
        Some((am, bm, scale))
    }

    fn add(a: Dec, b: Dec) -> Option<Dec> {
        let (x, y, scale) = Dec::align(a, b)?;
        Some(Dec {
            mant: x.checked_add(y)?,
            scale,
        })
    }

    fn sub(a: Dec, b: Dec) -> Option<Dec> {
        let (x, y, scale) = Dec::align(a, b)?;
        Some(Dec {
            mant: x.checked_sub(y)?,
            scale,
        })
    }

    fn mul(a: Dec, b: Dec) -> Option<Dec> {
        Some(Dec {
            mant: a.mant.checked_mul(b.mant)?,
            scale: a.scale + b.scale,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e-{}", self.mant, self.scale)
            .parse()
            .unwrap_or(0.0)
    }
}

type DecFn = fn(Dec, Dec) -> Option<Dec>;

#[derive(Clone, Copy)]
enum DecOp {
    Add,
    Sub,
    Mul,
}

/// Folds float arguments with exact decimal arithmetic, falling back to binary floats
/// when a value does not fit.
fn decimal_fold(args: &[Value], init: f64, op: DecOp) -> f64 {
    let mut acc = Dec::from_f64(init);
    let mut fallback = init;
    for a in args {
        let x = cast_float(a);
        let (f, d): (f64, DecFn) = match op {
            DecOp::Add => (fallback + x, Dec::add),
            DecOp::Sub => (fallback - x, Dec::sub),
            DecOp::Mul => (fallback * x, Dec::mul),
        };
        fallback = f;
        acc = match (acc, Dec::from_f64(x)) {
            (Some(a), Some(b)) => d(a, b),
            _ => None,
        };
    }
    acc.map_or(fallback, Dec::to_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_float_math() {
        let v = |f: f64| Value::Float(f);
        assert_eq!(decimal_fold(&[v(0.1), v(0.2)], 0.0, DecOp::Add), 0.3);
        assert_eq!(decimal_fold(&[v(1.1)], 3.0, DecOp::Mul), 3.3);
        assert_eq!(decimal_fold(&[v(0.1)], 0.3, DecOp::Sub), 0.2);
    }
}
