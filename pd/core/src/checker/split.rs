//! Split checker: asks a region's leader to split once its reported approximate size or
//! key count reaches the configured threshold.
//!
//! Input: the region's registered metadata and fresh heartbeat, config. Output: at most one
//! `Split` operator with a single `SplitRegion` step; the store chooses the split key
//! (`CheckPolicy::Approximate`) and asks for ids with `AskBatchSplit`. The step is done once
//! a heartbeat shows the region's range changed.

use ferrokv_core::types::RegionId;

use crate::operator::{Operator, OperatorKind, Step};
use crate::view::ClusterView;

/// Plans a split of `region_id` if it is too large.
pub fn plan(view: &ClusterView<'_>, region_id: RegionId) -> Option<Operator> {
    if view.is_busy(region_id) {
        return None;
    }
    let region = view.region(region_id)?;
    let report = &view.fresh_stats(region_id)?.report;
    let too_big = report.approximate_size_bytes >= view.config.region_split_size_bytes;
    let too_many_keys = report.approximate_keys >= view.config.region_split_keys;
    if !too_big && !too_many_keys {
        return None;
    }
    let step = Step::SplitRegion {
        start_key: region.start_key.clone(),
        end_key: region.end_key.clone(),
    };
    Some(Operator::new(
        region,
        OperatorKind::Split,
        vec![step],
        view.now_ms,
        view.config,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{region, Fixture};
    use ferrokv_proto::metapb::PeerRole::Voter;

    fn fixture_with_report(size_bytes: u64, keys: u64) -> Fixture {
        let mut fixture = Fixture::new(1);
        let mut report = fixture.put_region(region(10, ("a", ""), (1, 2), &[(11, 1, Voter)]));
        report.approximate_size_bytes = size_bytes;
        report.approximate_keys = keys;
        fixture.record(report);
        fixture
    }

    #[test]
    fn small_regions_stay_whole() {
        let fixture = fixture_with_report(1_000, 10);
        assert_eq!(plan(&fixture.view(), RegionId(10)), None);
    }

    #[test]
    fn size_or_keys_at_the_threshold_split() {
        let threshold = crate::config::Config::default().region_split_size_bytes;
        let by_size = fixture_with_report(threshold, 10);
        let operator = plan(&by_size.view(), RegionId(10)).expect("splits");
        assert_eq!(operator.kind(), OperatorKind::Split);
        assert_eq!(
            operator.steps(),
            &[Step::SplitRegion {
                start_key: b"a".to_vec(),
                end_key: vec![]
            }]
        );
        let keys = crate::config::Config::default().region_split_keys;
        let by_keys = fixture_with_report(0, keys);
        assert!(plan(&by_keys.view(), RegionId(10)).is_some());
        assert_eq!(plan(&by_keys.view(), RegionId(99)), None, "unknown region");
    }
}
