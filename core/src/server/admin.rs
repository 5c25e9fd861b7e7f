//! Topic and config administration: CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs and DescribeCluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use tracing::info;

use super::{blocking, Shared};
use crate::broker::{is_internal, Broker};
use crate::protocol::error_code_for;
use crate::protocol::str_bytes as s;
use crate::topic::{validate_topic_name, NewTopic};
use crate::vocabulary::ErrorCode;
use crate::{Error, Result};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// A per-resource result that can carry an error code and message.
trait Failed: Sized {
    /// This result, failed with `e`.
    fn failed(self, e: &Error) -> Self;
}

macro_rules! failed_with_message {
    ($($t:ty),*) => {$(
        impl Failed for $t {
            fn failed(self, e: &Error) -> Self {
                self.with_error_code(error_code_for(e).code()).with_error_message(Some(s(&e.to_string())))
            }
        }
    )*};
}

failed_with_message!(
    CreatableTopicResult,
    DeletableTopicResult,
    CreatePartitionsTopicResult,
    DescribeConfigsResult,
    AlterConfigsResourceResponse,
    IncrementalResult
);

fn validate_new_topic(broker: &Broker, topic: &NewTopic) -> Result<()> {
    validate_topic_name(&topic.name)?;
    if is_internal(&topic.name) {
        return Err(Error::InvalidTopicName {
            name: topic.name.clone(),
            reason: "is an internal topic".into(),
        });
    }
    if topic.num_partitions < 1 {
        return Err(Error::InvalidPartitions {
            topic: topic.name.clone(),
            reason: format!("{} partitions requested; at least 1 is needed", topic.num_partitions),
        });
    }
    if broker.list_all_topics().contains(&topic.name) {
        return Err(Error::TopicExists(topic.name.clone()));
    }
    broker.config().log_defaults.with_overrides(&topic.configs).map(|_| ())
}

pub(super) async fn create_topics(
    shared: &Arc<Shared>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let validate_only = req.validate_only;
    let results = blocking(shared, move |sh| {
        let broker = sh.broker();
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let result = CreatableTopicResult::default().with_name(t.name.clone());
                if t.replication_factor > 1 || t.assignments.iter().any(|a| a.broker_ids.len() > 1) {
                    return result
                        .with_error_code(ErrorCode::InvalidReplicationFactor.code())
                        .with_error_message(Some(s(&format!(
                            "replication factor {} is larger than the 1 broker available",
                            t.replication_factor
                        ))));
                }
                let partitions = if !t.assignments.is_empty() {
                    t.assignments.len() as i32
                } else if t.num_partitions < 0 {
                    broker.config().num_partitions
                } else {
                    t.num_partitions
                };
                let mut topic = NewTopic::new(name.clone(), partitions);
                for c in &t.configs {
                    if let Some(v) = &c.value {
                        topic.configs.insert(c.name.to_string(), v.to_string());
                    }
                }
                let outcome = if validate_only {
                    validate_new_topic(broker, &topic)
                } else {
                    broker.create_topic(topic.clone())
                };
                match outcome {
                    Err(e) => result.failed(&e),
                    Ok(()) => {
                        if !validate_only {
                            info!(topic = %name, partitions, "topic created by a client");
                        }
                        if version < 5 {
                            // Partition count and configs are reported from v5 on.
                            return result;
                        }
                        let configs = broker
                            .config()
                            .log_defaults
                            .with_overrides(&topic.configs)
                            .map(|c| c.to_properties())
                            .unwrap_or_default();
                        result.with_num_partitions(partitions).with_replication_factor(1).with_configs(Some(
                            configs
                                .into_iter()
                                .map(|(k, v)| {
                                    let source = if topic.configs.contains_key(&k) {
                                        SOURCE_TOPIC
                                    } else {
                                        SOURCE_DEFAULT
                                    };
                                    CreatableTopicConfigs::default()
                                        .with_name(s(&k))
                                        .with_value(Some(s(&v)))
                                        .with_config_source(source)
                                })
                                .collect(),
                        ))
                    }
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    CreateTopicsResponse::default().with_topics(results)
}

pub(super) async fn delete_topics(shared: &Arc<Shared>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut names: Vec<String> = req.topic_names.iter().map(|n| n.0.to_string()).collect();
    names.extend(req.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())));
    let by_id_only = req.topics.iter().filter(|t| t.name.is_none()).count();
    let mut results = blocking(shared, move |sh| {
        names
            .into_iter()
            .map(|name| {
                let result = DeletableTopicResult::default()
                    .with_name(Some(kafka_protocol::messages::TopicName(s(&name))));
                let outcome = if is_internal(&name) {
                    Err(Error::InvalidTopicName {
                        name: name.clone(),
                        reason: "internal topics cannot be deleted".into(),
                    })
                } else {
                    sh.broker().delete_topic(&name)
                };
                match outcome {
                    Ok(()) => {
                        sh.producers.forget_topic(&name);
                        info!(topic = %name, "topic deleted by a client");
                        result
                    }
                    Err(e) => result.failed(&e),
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    for _ in 0..by_id_only {
        results.push(
            DeletableTopicResult::default()
                .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                .with_error_message(Some(s("topic ids are not assigned by this broker; delete by name"))),
        );
    }
    DeleteTopicsResponse::default().with_responses(results)
}

pub(super) async fn create_partitions(
    shared: &Arc<Shared>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let validate_only = req.validate_only;
    let results = blocking(shared, move |sh| {
        let broker = sh.broker();
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let outcome = if validate_only {
                    broker.partition_count(&name).and_then(|now| {
                        if t.count > now {
                            Ok(())
                        } else {
                            Err(Error::InvalidPartitions {
                                topic: name.clone(),
                                reason: format!("topic has {now} partitions; {} would not add any", t.count),
                            })
                        }
                    })
                } else {
                    broker.create_partitions(&name, t.count)
                };
                let result = CreatePartitionsTopicResult::default().with_name(t.name);
                match outcome {
                    Ok(()) => result,
                    Err(e) => result.failed(&e),
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    CreatePartitionsResponse::default().with_results(results)
}

pub(super) fn describe_configs(shared: &Arc<Shared>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let broker = shared.broker();
    DescribeConfigsResponse::default().with_results(
        req.resources
            .into_iter()
            .map(|r| {
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let entries: Result<Vec<(String, String, i8, bool)>> = match r.resource_type {
                    RESOURCE_TOPIC => broker.topic_configs(r.resource_name.as_str()).map(|c| {
                        c.into_iter()
                            .map(|(k, (v, overridden))| {
                                (k, v, if overridden { SOURCE_TOPIC } else { SOURCE_DEFAULT }, false)
                            })
                            .collect()
                    }),
                    RESOURCE_BROKER => {
                        let me = shared.node_id.to_string();
                        if r.resource_name.as_str() != me && !r.resource_name.is_empty() {
                            Err(Error::InvalidConfig {
                                key: "resource_name".into(),
                                reason: format!("broker '{}' is not this broker ({me})", r.resource_name),
                            })
                        } else {
                            Ok(broker
                                .config()
                                .to_properties()
                                .into_iter()
                                .map(|(k, v)| (k, v, SOURCE_STATIC_BROKER, true))
                                .collect())
                        }
                    }
                    other => Err(Error::InvalidConfig {
                        key: "resource_type".into(),
                        reason: format!("resource type {other} has no configs here (2 = topic, 4 = broker)"),
                    }),
                };
                match entries {
                    Err(e) => result.failed(&e),
                    Ok(entries) => result.with_configs(
                        entries
                            .into_iter()
                            .filter(|(k, _, _, _)| {
                                r.configuration_keys
                                    .as_ref()
                                    .is_none_or(|keys| keys.iter().any(|q| q.as_str() == k))
                            })
                            .map(|(k, v, source, read_only)| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(s(&k))
                                    .with_value(Some(s(&v)))
                                    .with_read_only(read_only)
                                    .with_config_source(source)
                            })
                            .collect(),
                    ),
                }
            })
            .collect(),
    )
}

/// Applies (or, with `validate_only`, checks) new overrides for a topic.
fn alter_topic(
    broker: &Broker,
    topic: &str,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<()> {
    let current = broker.topic_configs(topic)?;
    broker.config().log_defaults.with_overrides(&overrides)?;
    if validate_only {
        return Ok(());
    }
    let delete: Vec<String> = current
        .iter()
        .filter(|(k, (_, o))| *o && !overrides.contains_key(*k))
        .map(|(k, _)| k.clone())
        .collect();
    broker.alter_topic_config(topic, &overrides, &delete)
}

fn not_a_topic(resource_type: i8) -> Error {
    Error::InvalidConfig {
        key: "resource_type".into(),
        reason: if resource_type == RESOURCE_BROKER {
            "broker configs are static; set them in the broker's properties and restart".into()
        } else {
            format!("resource type {resource_type} cannot be altered (2 = topic)")
        },
    }
}

pub(super) async fn alter_configs(shared: &Arc<Shared>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let validate_only = req.validate_only;
    let responses = blocking(shared, move |sh| {
        req.resources
            .into_iter()
            .map(|r| {
                let outcome = if r.resource_type != RESOURCE_TOPIC {
                    Err(not_a_topic(r.resource_type))
                } else {
                    // AlterConfigs replaces the whole set of overrides.
                    let overrides = r
                        .configs
                        .iter()
                        .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                        .collect();
                    alter_topic(sh.broker(), r.resource_name.as_str(), overrides, validate_only)
                };
                let resp = AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name);
                match outcome {
                    Ok(()) => resp,
                    Err(e) => resp.failed(&e),
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    AlterConfigsResponse::default().with_responses(responses)
}

pub(super) async fn incremental_alter_configs(
    shared: &Arc<Shared>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let validate_only = req.validate_only;
    let responses = blocking(shared, move |sh| {
        req.resources
            .into_iter()
            .map(|r| {
                let outcome = if r.resource_type != RESOURCE_TOPIC {
                    Err(not_a_topic(r.resource_type))
                } else {
                    let topic = r.resource_name.as_str();
                    sh.broker().topic_configs(topic).and_then(|current| {
                        let mut overrides: BTreeMap<String, String> =
                            current.iter().filter(|(_, (_, o))| *o).map(|(k, (v, _))| (k.clone(), v.clone())).collect();
                        for c in &r.configs {
                            let key = c.name.to_string();
                            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                            let list = |k: &str| -> Vec<String> {
                                current
                                    .get(k)
                                    .map(|(v, _)| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
                                    .unwrap_or_default()
                            };
                            match c.config_operation {
                                0 => {
                                    overrides.insert(key, value);
                                }
                                1 => {
                                    overrides.remove(&key);
                                }
                                2 => {
                                    let mut items = list(&key);
                                    for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                                        if !items.iter().any(|i| i == v) {
                                            items.push(v.to_string());
                                        }
                                    }
                                    overrides.insert(key, items.join(","));
                                }
                                3 => {
                                    let drop: Vec<&str> = value.split(',').map(str::trim).collect();
                                    let items: Vec<String> =
                                        list(&key).into_iter().filter(|i| !drop.contains(&i.as_str())).collect();
                                    overrides.insert(key, items.join(","));
                                }
                                op => {
                                    return Err(Error::InvalidConfig {
                                        key,
                                        reason: format!("unknown config operation {op} (0 set, 1 delete, 2 append, 3 subtract)"),
                                    })
                                }
                            }
                        }
                        alter_topic(sh.broker(), topic, overrides, validate_only)
                    })
                };
                let resp =
                    IncrementalResult::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name);
                match outcome {
                    Ok(()) => resp,
                    Err(e) => resp.failed(&e),
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub(super) fn describe_cluster(
    shared: &Arc<Shared>,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(shared.cluster_id.clone())
        .with_controller_id(BrokerId(shared.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(shared.node_id))
            .with_host(shared.host.clone())
            .with_port(shared.port)])
}
