//! Background traffic: what each workload does in one hour of simulated
//! time, drawn from its own random stream so an hour never depends on
//! what was generated before it.

use crate::estate::{
    hour_of_day, weekday, CredKind, Estate, Rhythm, TargetRef, Workload, DAY_US, ENVS, HOUR_US,
    MIN_US,
};
use crate::rng::Rng;

/// The credential presented with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cred {
    Svid {
        kind: CredKind,
        expires_us: i64,
    },
    /// A long-lived static key; `None` when it never expires.
    StaticKey {
        expires_us: Option<i64>,
    },
    /// A JWT-SVID presented after it expired.
    ExpiredJwt {
        expires_us: i64,
    },
}

/// One simulated decision, before rendering.
#[derive(Debug, Clone)]
pub struct Ev {
    pub t_us: i64,
    /// Index into `Estate::workloads` (ghosts included).
    pub subject: usize,
    pub target: TargetRef,
    pub route: usize,
    pub resource: String,
    pub source: [u8; 4],
    pub allow: bool,
    pub cred: Cred,
    pub label: Option<u32>,
}

/// Stream tags for [`Rng::derive`].
pub const STREAM_BACKGROUND: u64 = 2;
pub const STREAM_IP: u64 = 3;

/// Pod IP of replica `replica` after `generation` deploys.
pub fn pod_ip(seed: u64, workload: usize, generation: usize, replica: u32) -> [u8; 4] {
    let mut r = Rng::derive(
        seed,
        &[
            STREAM_IP,
            workload as u64,
            generation as u64,
            replica as u64,
        ],
    );
    let env_octet = 0; // filled by the caller
    [10, env_octet, r.below(256) as u8, r.range(1, 254) as u8]
}

pub fn source_of(seed: u64, w: &Workload, wi: usize, t_us: i64, rng: &mut Rng) -> [u8; 4] {
    let generation = w.deploys.partition_point(|&d| d <= t_us);
    let replica = rng.below(w.replicas as u64) as u32;
    let mut ip = pod_ip(seed, wi, generation, replica);
    ip[1] = ENVS[w.env].octet;
    ip
}

/// The normal credential of `w` at `t_us`: SVIDs rotate on a fixed phase,
/// so `expires_at` is the next rotation after the call.
pub fn normal_cred(w: &Workload, t_us: i64) -> Cred {
    let life = w.cred.lifetime_us();
    let phase = w.cred_phase_s * 1_000_000 % life;
    let since = (t_us - phase).rem_euclid(life);
    Cred::Svid {
        kind: w.cred,
        expires_us: t_us - since + life,
    }
}

/// Expected calls in the hour starting at `hour_us` (before rate scaling
/// for cron jobs, which carry their own per-run count) and the part of the
/// hour they fall in, as `(from, length)`.
pub fn expected(w: &Workload, hour_us: i64) -> (f64, i64, i64) {
    let h = hour_of_day(hour_us);
    let wd = weekday(hour_us);
    match &w.rhythm {
        Rhythm::Diurnal { trough, phase_h } => {
            let x = (h as f64 + 0.5 - 14.0 - phase_h) / 24.0 * std::f64::consts::TAU;
            let mut f = trough + (1.0 - trough) * (0.5 + 0.5 * x.cos());
            if wd >= 5 {
                f *= 0.6;
            }
            (w.base_rate * f, hour_us, HOUR_US)
        }
        Rhythm::Office => {
            if wd < 5 && (7..19).contains(&h) {
                (w.base_rate, hour_us, HOUR_US)
            } else {
                (0.0, hour_us, 0)
            }
        }
        Rhythm::Steady => (w.base_rate, hour_us, HOUR_US),
        Rhythm::Cron {
            weekday: on,
            hour,
            minute,
            minutes,
            calls_per_run,
        } => {
            let day = hour_us.div_euclid(DAY_US) * DAY_US;
            // A run that started yesterday may spill past midnight.
            for run_day in [day, day - DAY_US] {
                if on.is_some_and(|d| d != weekday(run_day)) {
                    continue;
                }
                let start = run_day + *hour as i64 * HOUR_US + *minute as i64 * MIN_US;
                let end = start + *minutes as i64 * MIN_US;
                let from = start.max(hour_us);
                let to = end.min(hour_us + HOUR_US);
                if from < to {
                    let share = (to - from) as f64 / (end - start) as f64;
                    return (calls_per_run * share, from, to - from);
                }
            }
            (0.0, hour_us, 0)
        }
    }
}

/// Truncates to the millisecond.
pub fn ms(t_us: i64) -> i64 {
    t_us - t_us.rem_euclid(1000)
}

/// Picks a key active at `t_us` by weight.
pub fn pick_key(w: &Workload, t_us: i64, rng: &mut Rng) -> Option<usize> {
    let total: f64 = w
        .keys
        .iter()
        .filter(|k| k.since_us <= t_us)
        .map(|k| k.weight)
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut x = rng.f64() * total;
    let mut last = None;
    for (i, k) in w.keys.iter().enumerate() {
        if k.since_us > t_us {
            continue;
        }
        last = Some(i);
        if x < k.weight {
            return Some(i);
        }
        x -= k.weight;
    }
    last
}

/// Appends the background events of hour `hour_us` to `out`.
pub fn background_hour(
    estate: &Estate,
    seed: u64,
    rate_scale: f64,
    hour_us: i64,
    out: &mut Vec<Ev>,
) {
    let hour_index = hour_us.div_euclid(HOUR_US) as u64;
    for (wi, w) in estate.workloads.iter().enumerate() {
        if w.ghost || w.keys.is_empty() {
            continue;
        }
        let (lambda, from, len) = expected(w, hour_us);
        if len == 0 || lambda <= 0.0 {
            continue;
        }
        let mut rng = Rng::derive(seed, &[STREAM_BACKGROUND, wi as u64, hour_index]);
        let lambda = lambda * rate_scale;
        let n = match w.dispersion {
            Some(k) => rng.neg_binomial(lambda, k),
            None => rng.poisson(lambda),
        };
        for _ in 0..n {
            // Millisecond resolution, as every format writes it.
            let t_us = ms(from + rng.below(len as u64) as i64);
            let Some(ki) = pick_key(w, t_us, &mut rng) else {
                continue;
            };
            let key = &w.keys[ki];
            let resource = estate.routes[key.route].render(&mut rng);
            let source = source_of(seed, w, wi, t_us, &mut rng);
            let allow = !(key.deny_rate > 0.0 && rng.chance(key.deny_rate));
            out.push(Ev {
                t_us,
                subject: wi,
                target: key.target,
                route: key.route,
                resource,
                source,
                allow,
                cred: normal_cred(w, t_us),
                label: key.label,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estate::{Estate, Kind};

    #[test]
    fn credentials_expire_after_the_call() {
        let estate = Estate::build(3, 40);
        for w in &estate.workloads {
            for t in [0, 17 * MIN_US + 3, 5 * HOUR_US + 59 * MIN_US] {
                let Cred::Svid { kind, expires_us } = normal_cred(w, t) else {
                    panic!()
                };
                assert!(expires_us > t && expires_us <= t + kind.lifetime_us());
            }
        }
    }

    #[test]
    fn office_hours_are_quiet_at_night_and_weekends() {
        let estate = Estate::build(3, 40);
        let w = estate
            .workloads
            .iter()
            .find(|w| w.kind == Kind::OfficeHours)
            .unwrap();
        // 2026-10-05 is a Monday.
        let monday = chrono::NaiveDate::from_ymd_opt(2026, 10, 5)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        assert_eq!(weekday(monday), 0);
        assert!(expected(w, monday + 3 * HOUR_US).0 == 0.0);
        assert!(expected(w, monday + 10 * HOUR_US).0 > 0.0);
        assert!(expected(w, monday + 5 * DAY_US + 10 * HOUR_US).0 == 0.0);
    }
}
