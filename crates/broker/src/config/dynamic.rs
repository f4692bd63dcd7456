//! Dynamic broker configs: the overrides (Incremental)AlterConfigs sets on a BROKER
//! resource, at Kafka's two levels. The resource named "" holds cluster-wide defaults
//! (DescribeConfigs source DYNAMIC_DEFAULT_BROKER_CONFIG); the one named by a node id
//! holds that broker's own (DYNAMIC_BROKER_CONFIG), which win over the defaults. Both
//! win over server.properties. Stored in the metadata log (`BrokerConfigsRecord`).

use std::collections::BTreeMap;

/// Which level a dynamic broker config comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicLevel {
    /// Resource name "": every broker's default.
    ClusterDefault,
    /// Resource name = this node's id.
    PerBroker,
}

/// This broker's dynamic configs, both levels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicBrokerConfigs {
    pub cluster_default: BTreeMap<String, String>,
    pub per_broker: BTreeMap<String, String>,
}

impl DynamicBrokerConfigs {
    /// The level a BROKER resource name addresses: "" the cluster default, else a node.
    pub fn level_of(resource_name: &str) -> DynamicLevel {
        if resource_name.is_empty() {
            DynamicLevel::ClusterDefault
        } else {
            DynamicLevel::PerBroker
        }
    }

    pub fn level(&self, level: DynamicLevel) -> &BTreeMap<String, String> {
        match level {
            DynamicLevel::ClusterDefault => &self.cluster_default,
            DynamicLevel::PerBroker => &self.per_broker,
        }
    }

    pub fn set_level(&mut self, level: DynamicLevel, configs: BTreeMap<String, String>) {
        match level {
            DynamicLevel::ClusterDefault => self.cluster_default = configs,
            DynamicLevel::PerBroker => self.per_broker = configs,
        }
    }

    /// The value in effect for `key` and its level: this broker's own first.
    pub fn get(&self, key: &str) -> Option<(&str, DynamicLevel)> {
        self.per_broker
            .get(key)
            .map(|v| (v.as_str(), DynamicLevel::PerBroker))
            .or_else(|| {
                self.cluster_default
                    .get(key)
                    .map(|v| (v.as_str(), DynamicLevel::ClusterDefault))
            })
    }

    /// Every dynamic config in effect: the defaults with this broker's own on top.
    pub fn effective(&self) -> BTreeMap<String, String> {
        let mut out = self.cluster_default.clone();
        out.extend(self.per_broker.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brokers_own_value_wins_over_the_cluster_default() {
        let mut d = DynamicBrokerConfigs::default();
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        d.set_level(DynamicLevel::ClusterDefault, map(&[("a", "1"), ("b", "2")]));
        d.set_level(DynamicLevel::PerBroker, map(&[("b", "3")]));
        assert_eq!(d.get("a"), Some(("1", DynamicLevel::ClusterDefault)));
        assert_eq!(d.get("b"), Some(("3", DynamicLevel::PerBroker)));
        assert_eq!(d.get("c"), None);
        assert_eq!(d.effective(), map(&[("a", "1"), ("b", "3")]));
        assert_eq!(DynamicBrokerConfigs::level_of(""), DynamicLevel::ClusterDefault);
        assert_eq!(DynamicBrokerConfigs::level_of("1"), DynamicLevel::PerBroker);
    }
}
