"""Drives a Runnel broker with kafka-python, the pure-Python Kafka client.

Usage: kafka_python_check.py BOOTSTRAP

Checks: topic create and list, produce, consume from the beginning, and a
consumer group that commits, closes, and resumes where it left off in a new
consumer. Exits non-zero with a message on the first mismatch.
"""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

bootstrap = sys.argv[1]
topic = "py-events"
group = "py-group"
total = 300


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-admin")
try:
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
except TopicAlreadyExistsError:
    fail("topic existed before the test created it")
try:
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    fail("creating the topic twice succeeded")
except TopicAlreadyExistsError:
    pass
if topic not in admin.list_topics():
    fail(f"{topic} missing from list_topics: {admin.list_topics()}")
print(f"created and listed {topic}")

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, compression_type="gzip")
futures = [producer.send(topic, key=f"k{i % 17}".encode(), value=f"v{i}".encode()) for i in range(total)]
producer.flush()
offsets = [f.get(timeout=10) for f in futures]
if len({(m.partition, m.offset) for m in offsets}) != total:
    fail("duplicate (partition, offset) in produce acknowledgements")
producer.close()
print(f"produced {total} records")

# Everything, from the beginning, without a group.
reader = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
reader.assign([TopicPartition(topic, p) for p in range(3)])
reader.seek_to_beginning()
seen = [m.value.decode() for m in reader]
reader.close()
if sorted(seen) != sorted(f"v{i}" for i in range(total)):
    fail(f"read back {len(seen)} records, not the {total} produced")
print(f"read all {total} from the beginning")

# A group member reads half, commits, and leaves.
first = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id=group,
    auto_offset_reset="earliest",
    enable_auto_commit=False,
)
got_first = []
deadline = time.time() + 30
while len(got_first) < total // 2 and time.time() < deadline:
    for _tp, msgs in first.poll(timeout_ms=500, max_records=total // 2 - len(got_first)).items():
        got_first.extend(m.value.decode() for m in msgs)
if len(got_first) != total // 2:
    fail(f"first member got {len(got_first)} records, wanted {total // 2}")
first.commit()
committed = sum(first.committed(TopicPartition(topic, p)) or 0 for p in range(3))
if committed != total // 2:
    fail(f"committed offsets sum to {committed}, wanted {total // 2}")
first.close()
print(f"group member read {len(got_first)} and committed")

# A new member of the same group resumes after the committed offsets.
second = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
got_second = []
deadline = time.time() + 30
while len(got_first) + len(got_second) < total and time.time() < deadline:
    for _tp, msgs in second.poll(timeout_ms=500).items():
        got_second.extend(m.value.decode() for m in msgs)
second.commit()
second.close()
if set(got_first) & set(got_second):
    fail(f"{len(set(got_first) & set(got_second))} records delivered to both members")
if sorted(got_first + got_second) != sorted(f"v{i}" for i in range(total)):
    fail(f"resume delivered {len(got_second)} records; together {len(got_first) + len(got_second)} of {total}")
print(f"second member resumed with the other {len(got_second)}")

groups = [g["group_id"] for g in admin.list_groups()]
if group not in groups:
    fail(f"{group} missing from list_groups: {groups}")
described = admin.describe_groups([group])[group]
if described["group_state"] != "Empty" or described["members"]:
    fail(f"{group} should be Empty with no members after both closed: {described}")
admin.delete_topics([topic])
if topic in admin.list_topics():
    fail("topic still listed after delete")
admin.close()
print("OK")
