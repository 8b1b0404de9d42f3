//! How a cluster's instances split the work: `n` instances doing everything, or API-only
//! instances in front of worker-only ones (the team's MainServer ×2 + EventApplyServer ×2).
//! Spelled `all=3` or `api=2,worker=2` on the command line.

use std::{fmt, str::FromStr};

/// How the instances split the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// `n` instances, each serving HTTP and consuming.
    Uniform(usize),
    /// `api` HTTP-only instances and `workers` consumer-only ones; clients talk to the API
    /// instances only.
    Split {
        /// HTTP-only instances (`instance.role = api`).
        api: usize,
        /// Consumer-only instances (`instance.role = worker`).
        workers: usize,
    },
}

impl Topology {
    /// The team's deployment: 2 API + 2 worker instances.
    pub const TEAM: Topology = Topology::Split { api: 2, workers: 2 };

    /// Processes to start.
    pub fn count(self) -> usize {
        match self {
            Topology::Uniform(n) => n,
            Topology::Split { api, workers } => api + workers,
        }
    }

    /// The first `api()` instances serve HTTP.
    pub fn api(self) -> usize {
        match self {
            Topology::Uniform(n) => n,
            Topology::Split { api, .. } => api,
        }
    }

    /// The role, index and count of instance `i`: workers number themselves among workers,
    /// so partition `p` belongs to the worker with `p % workers == index`.
    pub fn env(self, i: usize) -> Vec<(String, String)> {
        let (role, index, of) = match self {
            Topology::Uniform(n) => ("all", i, n),
            Topology::Split { api, .. } if i < api => ("api", i, api),
            Topology::Split { api, workers } => ("worker", i - api, workers),
        };
        vec![
            ("APP__INSTANCE__ROLE".to_owned(), role.to_owned()),
            ("APP__INSTANCE__INDEX".to_owned(), index.to_string()),
            ("APP__INSTANCE__COUNT".to_owned(), of.to_string()),
        ]
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Uniform(n) => write!(f, "{n} × all"),
            Topology::Split { api, workers } => write!(f, "{api} api + {workers} worker"),
        }
    }
}

impl FromStr for Topology {
    type Err = String;

    /// `3`, `all=3`, or `api=2,worker=2` (`workers=` is accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a topology; write e.g. all=1 or api=2,worker=2");
        if let Ok(n) = s.trim().parse::<usize>() {
            return if n > 0 { Ok(Topology::Uniform(n)) } else { Err(bad()) };
        }
        let (mut all, mut api, mut workers) = (0, 0, 0);
        for part in s.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            let n: usize = value.trim().parse().map_err(|_| bad())?;
            match key.trim() {
                "all" => all += n,
                "api" => api += n,
                "worker" | "workers" => workers += n,
                _ => return Err(bad()),
            }
        }
        match (all, api, workers) {
            (n, 0, 0) if n > 0 => Ok(Topology::Uniform(n)),
            (0, api, workers) if api > 0 && workers > 0 => Ok(Topology::Split { api, workers }),
            // API-only instances with nobody consuming would answer every Kafka request
            // `pending` forever; workers alone serve no HTTP.
            _ => Err(format!("{}: give `all=N`, or both api=N and worker=M", bad())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings() {
        assert_eq!("3".parse(), Ok(Topology::Uniform(3)));
        assert_eq!("all=1".parse(), Ok(Topology::Uniform(1)));
        assert_eq!("api=2,worker=2".parse(), Ok(Topology::TEAM));
        assert_eq!(" api=1 , workers=3 ".parse(), Ok(Topology::Split { api: 1, workers: 3 }));
        for bad in ["0", "api=2", "worker=1", "all=1,api=1,worker=1", "x=1", "api=two,worker=1", ""] {
            assert!(bad.parse::<Topology>().is_err(), "{bad}");
        }
    }

    #[test]
    fn workers_number_themselves_among_workers() {
        let env = |i| Topology::TEAM.env(i).into_iter().map(|(_, v)| v).collect::<Vec<_>>();
        assert_eq!(env(0), ["api", "0", "2"]);
        assert_eq!(env(1), ["api", "1", "2"]);
        assert_eq!(env(2), ["worker", "0", "2"]);
        assert_eq!(env(3), ["worker", "1", "2"]);
        assert_eq!(Topology::TEAM.count(), 4);
        assert_eq!(Topology::TEAM.api(), 2);
        assert_eq!(Topology::Uniform(3).env(2)[0].1, "all");
    }
}
