//! Sizes, durations and SLURM time limits.

/// Parse a size such as `512`, `512B`, `4KB`, `4KiB`, `10MB`, `1.5GB`.
///
/// KB/MB/GB/TB and KiB/MiB/GiB/TiB are both powers of 1024, as in fio (its default
/// `kb_base=1024`) and in the recipes written for the earlier Python tool. `kB` too.
pub fn parse_size_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err("expected a number followed by a unit".into());
    }
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{num}` is not a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown unit `{other}`")),
    };
    let bytes = n * mult as f64;
    if bytes.fract() != 0.0 {
        return Err("size is not a whole number of bytes".into());
    }
    if bytes > (1u64 << 50) as f64 {
        return Err("size is too large".into());
    }
    Ok(bytes as u64)
}

/// Parse seconds: a plain number, or a number with `ms`, `s`, `m`, `h` (e.g. `90s`, `10m`).
pub fn parse_duration_s(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<f64>() {
        return if v.is_finite() {
            Ok(v)
        } else {
            Err("not a finite number".into())
        };
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (seconds, or e.g. 90s, 10m, 1h)"))?;
    let mult = match unit.trim() {
        "ms" => 0.001,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "`{s}` is not a duration (seconds, or e.g. 90s, 10m, 1h)"
            ))
        }
    };
    Ok(n * mult)
}

/// Longest SLURM time limit a recipe may ask for (sites cap far lower; a typo such as
/// `99999999999-00` would otherwise print trillions of node-hours).
pub const MAX_SLURM_TIME_S: u64 = 365 * 86400;

/// Parse a SLURM time limit: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`. Hours after a day
/// count are 0-23; minutes and seconds after another field are 0-59; at most
/// [`MAX_SLURM_TIME_S`] (365 days).
pub fn parse_slurm_time_s(s: &str) -> Result<u64, String> {
    let bad = || "not a SLURM time (M, M:S, H:M:S, D-H, D-H:M or D-H:M:S)".to_string();
    let too_long = || format!("longer than the {} days allowed", MAX_SLURM_TIME_S / 86400);
    let num = |x: &str| -> Result<u64, String> {
        if x.is_empty() || x.len() > 12 || !x.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        x.parse::<u64>().map_err(|_| bad())
    };
    let field = |x: &str, what: &str, max: u64| -> Result<u64, String> {
        let v = num(x)?;
        if v > max {
            return Err(format!("{what} `{x}` is out of range (0-{max})"));
        }
        Ok(v)
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (d, h, m, sec) = match (days, parts.as_slice()) {
        (None, [m]) => (0, 0, num(m)?, 0),
        (None, [m, s]) => (0, 0, num(m)?, field(s, "seconds", 59)?),
        (None, [h, m, s]) => (
            0,
            num(h)?,
            field(m, "minutes", 59)?,
            field(s, "seconds", 59)?,
        ),
        (Some(d), [h]) => (d, field(h, "hours", 23)?, 0, 0),
        (Some(d), [h, m]) => (d, field(h, "hours", 23)?, field(m, "minutes", 59)?, 0),
        (Some(d), [h, m, s]) => (
            d,
            field(h, "hours", 23)?,
            field(m, "minutes", 59)?,
            field(s, "seconds", 59)?,
        ),
        _ => return Err(bad()),
    };
    let secs = d
        .checked_mul(86400)
        .and_then(|x| x.checked_add(h.checked_mul(3600)?))
        .and_then(|x| x.checked_add(m.checked_mul(60)?))
        .and_then(|x| x.checked_add(sec))
        .ok_or_else(too_long)?;
    if secs == 0 {
        return Err("time limit must be greater than 0".into());
    }
    if secs > MAX_SLURM_TIME_S {
        return Err(too_long());
    }
    Ok(secs)
}

/// Format bytes as the largest whole unit (`4KiB`, `10MiB`, `1500B`).
pub fn format_size(bytes: u64) -> String {
    for (unit, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= m && bytes % m == 0 {
            return format!("{}{unit}", bytes / m);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_bytes("1KB"), Ok(1024));
        assert_eq!(parse_size_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_size_bytes("10MB"), Ok(10 << 20));
        assert_eq!(parse_size_bytes("512"), Ok(512));
        assert_eq!(parse_size_bytes("1.5KB"), Ok(1536));
        assert!(parse_size_bytes("10XB").is_err());
        assert!(parse_size_bytes("KB").is_err());
        assert_eq!(format_size(4096), "4KiB");
        assert_eq!(format_size(1500), "1500B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_s("60"), Ok(60.0));
        assert_eq!(parse_duration_s("10m"), Ok(600.0));
        assert_eq!(parse_duration_s("250ms"), Ok(0.25));
        assert!(parse_duration_s("ten").is_err());
    }

    #[test]
    fn slurm_times() {
        assert_eq!(parse_slurm_time_s("01:00:00"), Ok(3600));
        assert_eq!(parse_slurm_time_s("30"), Ok(1800));
        assert_eq!(parse_slurm_time_s("1-00:00:00"), Ok(86400));
        assert_eq!(parse_slurm_time_s("2-3"), Ok(2 * 86400 + 3 * 3600));
        assert!(parse_slurm_time_s("1:2:3:4").is_err());
        assert!(parse_slurm_time_s("abc").is_err());
        assert!(parse_slurm_time_s("00:00:00").is_err());
        // Issue 15: out-of-range fields and absurd lengths.
        assert!(parse_slurm_time_s("1-25")
            .unwrap_err()
            .contains("hours `25`"));
        assert!(parse_slurm_time_s("1-23:60")
            .unwrap_err()
            .contains("minutes"));
        assert!(parse_slurm_time_s("10:61").unwrap_err().contains("seconds"));
        assert!(parse_slurm_time_s("99999999999-99:99:99").is_err());
        assert!(parse_slurm_time_s("99999999999-00:00:00")
            .unwrap_err()
            .contains("365 days"));
        assert!(parse_slurm_time_s("99999999999999999999").is_err());
        assert_eq!(parse_slurm_time_s("365-00:00:00"), Ok(MAX_SLURM_TIME_S));
        assert!(parse_slurm_time_s("365-00:00:01").is_err());
        assert_eq!(parse_slurm_time_s("90"), Ok(5400));
        assert_eq!(parse_slurm_time_s("48:00:00"), Ok(48 * 3600));
    }
}
