package streams.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java clients (kafka-clients) against a broker: admin (create and describe topics, describe
 * the cluster, list offsets, list group offsets), an idempotent acks=all producer, a consumer
 * group that reads everything back and commits, and a timestamp lookup.
 *
 * <p>Usage: {@code ClientsCheck BOOTSTRAP}. Prints one "ok:" line per check; exits 1 on the
 * first failure.
 */
public final class ClientsCheck {
    private static final String TOPIC = "java-clients-check";
    private static final String GROUP = "java-clients-check-group";
    private static final int PARTITIONS = 3;
    private static final int RECORDS = 1000;

    private ClientsCheck() {}

    public static void main(String[] args) throws Exception {
        Log.quiet();
        if (args.length != 1) {
            System.err.println("usage: ClientsCheck BOOTSTRAP");
            System.exit(2);
        }
        String bootstrap = args[0];
        try {
            run(bootstrap);
        } catch (Throwable e) {
            System.err.println("FAILED: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    private static void run(String bootstrap) throws Exception {
        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        adminProps.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        try (Admin admin = Admin.create(adminProps)) {
            DescribeClusterResult cluster = admin.describeCluster();
            int nodes = cluster.nodes().get().size();
            check(nodes == 1, "describeCluster: one node, got " + nodes);
            check(cluster.controller().get() != null, "describeCluster: a controller");
            String clusterId = cluster.clusterId().get();
            check(clusterId != null && !clusterId.isEmpty(), "describeCluster: a cluster id");
            ok("admin describeCluster (1 node, cluster id " + clusterId + ")");

            try {
                admin.createTopics(List.of(new NewTopic(TOPIC, PARTITIONS, (short) 1))).all().get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
            check(admin.listTopics().names().get().contains(TOPIC), "listTopics names " + TOPIC);
            TopicDescription description =
                    admin.describeTopics(List.of(TOPIC)).allTopicNames().get().get(TOPIC);
            check(description.partitions().size() == PARTITIONS,
                    "describeTopics: " + PARTITIONS + " partitions, got " + description.partitions().size());
            ok("admin createTopics/listTopics/describeTopics (" + PARTITIONS + " partitions)");

            long before = System.currentTimeMillis();
            produce(bootstrap);
            consumeAsGroup(bootstrap);
            timestampLookup(bootstrap, before);

            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                latest.put(new TopicPartition(TOPIC, p), OffsetSpec.latest());
            }
            long end = 0;
            for (var info : admin.listOffsets(latest).all().get().values()) {
                end += info.offset();
            }
            check(end == RECORDS, "listOffsets latest sums to " + RECORDS + ", got " + end);
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata().get();
            long committedSum = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
            check(committedSum == RECORDS, "group offsets sum to " + RECORDS + ", got " + committedSum);
            ok("admin listOffsets and listConsumerGroupOffsets agree with the log end");
        }
    }

    private static void produce(String bootstrap) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < RECORDS; i++) {
                sent.add(producer.send(new ProducerRecord<>(TOPIC, "key-" + i, "value-" + i)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) {
                RecordMetadata md = f.get();
                check(md.offset() >= 0, "a produced record has an offset");
            }
        }
        ok("idempotent producer, acks=all: " + RECORDS + " records acknowledged");
    }

    private static Properties consumerProps(String bootstrap, String group) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        return props;
    }

    private static void consumeAsGroup(String bootstrap) {
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(consumerProps(bootstrap, GROUP))) {
            consumer.subscribe(List.of(TOPIC));
            long deadline = System.currentTimeMillis() + 60_000;
            while (seen.size() < RECORDS && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    String suffix = r.key().substring("key-".length());
                    check(r.value().equals("value-" + suffix), "value matches key at " + r.offset());
                    seen.add(r.key());
                }
            }
            check(seen.size() == RECORDS, "consumer group read " + RECORDS + " distinct records, got " + seen.size());
            check(consumer.assignment().size() == PARTITIONS,
                    "the only member owns all " + PARTITIONS + " partitions");
            consumer.commitSync();
            Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(consumer.assignment());
            long sum = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
            check(sum == RECORDS, "committed offsets sum to " + RECORDS + ", got " + sum);
        }
        ok("consumer group subscribe/poll/commitSync: all " + RECORDS + " records, offsets committed");
    }

    private static void timestampLookup(String bootstrap, long before) {
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(consumerProps(bootstrap, null))) {
            Map<TopicPartition, Long> query = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                query.put(new TopicPartition(TOPIC, p), before);
            }
            Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(query);
            for (var e : found.entrySet()) {
                check(e.getValue() != null && e.getValue().offset() == 0,
                        "offsetsForTimes(before produce) is offset 0 for " + e.getKey());
            }
            Map<TopicPartition, Long> beginning = consumer.beginningOffsets(query.keySet());
            check(beginning.values().stream().allMatch(o -> o == 0), "beginningOffsets are 0");
        }
        ok("offsetsForTimes and beginningOffsets");
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    static void ok(String what) {
        System.out.println("ok: " + what);
    }
}
