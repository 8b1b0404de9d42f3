//! `instance.index` from the host name: under an orchestrator a worker's place among the
//! workers is its pod's ordinal — a Kubernetes StatefulSet names its pods `<name>-0`,
//! `<name>-1`, … and sets each one's host name to that — so with
//! `instance.index_from_hostname = true` (`APP__INSTANCE__INDEX_FROM_HOSTNAME`) the number
//! after the host name's last `-` becomes `instance.index`, replacing the configured one.
//! `instance.count` stays a setting (the StatefulSet's `replicas`; docs/deploy.md).

use crate::configuration::InstanceSettings;

/// The ordinal at the end of a host name: `nanum-worker-3` (or its fully qualified form
/// `nanum-worker-3.nanum-worker.default.svc.cluster.local`) → 3.
pub fn ordinal(hostname: &str) -> Option<u32> {
    let first_label = hostname.split('.').next()?;
    let (_, digits) = first_label.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// This machine's host name: `$HOSTNAME` when set, else the kernel's.
pub fn hostname() -> Option<String> {
    let from_env = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    from_env.or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
    })
}

/// Applies `index_from_hostname` to `instance` using `hostname`.
///
/// # Errors
///
/// One line naming the setting, when it is on and the host name ends in no number.
pub fn resolve(instance: &mut InstanceSettings, hostname: Option<&str>) -> Result<(), String> {
    if !instance.index_from_hostname {
        return Ok(());
    }
    let name = hostname.unwrap_or_default();
    instance.index = ordinal(name).ok_or_else(|| {
        format!(
            "instance.index_from_hostname is set but the host name \"{name}\" does not end in -<number> \
             (a StatefulSet pod's does); unset APP__INSTANCE__INDEX_FROM_HOSTNAME or set APP__INSTANCE__INDEX"
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ordinal, resolve};
    use crate::configuration::InstanceSettings;

    fn settings(from_hostname: bool) -> InstanceSettings {
        InstanceSettings { index: 0, count: 5, role: Default::default(), index_from_hostname: from_hostname }
    }

    #[test]
    fn a_statefulset_pod_hostname_gives_its_ordinal() {
        assert_eq!(ordinal("nanum-worker-3"), Some(3));
        assert_eq!(ordinal("nanum-worker-0"), Some(0));
        assert_eq!(ordinal("nanum-worker-12.nanum-worker.nanum.svc.cluster.local"), Some(12));
    }

    #[test]
    fn a_hostname_without_a_trailing_number_gives_none() {
        for name in ["nanum-worker", "nanum-worker-", "worker3", "nanum-api-7d9f8c-x2x4q", "", "-"] {
            assert_eq!(ordinal(name), None, "{name}");
        }
    }

    #[test]
    fn the_hostname_replaces_the_configured_index_only_when_asked() {
        let mut on = settings(true);
        resolve(&mut on, Some("nanum-worker-3")).unwrap();
        assert_eq!(on.index, 3);
        let mut off = settings(false);
        resolve(&mut off, Some("nanum-worker-3")).unwrap();
        assert_eq!(off.index, 0);
    }

    #[test]
    fn asking_for_the_hostname_index_on_a_plain_host_names_the_setting() {
        let message = resolve(&mut settings(true), Some("laptop")).unwrap_err();
        assert!(message.contains("APP__INSTANCE__INDEX_FROM_HOSTNAME"), "{message}");
    }
}
