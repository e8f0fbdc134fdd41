package streams.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java clients' transactions against a broker: a transactional producer commits, aborts and
 * leaves a transaction open; a {@code read_committed} consumer must read exactly the committed
 * records (never an aborted one, and nothing past the last stable offset of the open
 * transaction), a {@code read_uncommitted} consumer exactly all of them. Offsets sent with
 * {@code sendOffsetsToTransaction} count only when their transaction commits, and a second
 * producer with the same transactional id fences the first.
 *
 * <p>Usage: {@code TransactionsCheck BOOTSTRAP}. Prints one "ok:" line per check; exits 1 on the
 * first failure.
 */
public final class TransactionsCheck {
    private static final String TOPIC = "java-transactions-check";
    private static final String TRANSACTIONAL_ID = "java-transactions-check-producer";
    private static final String GROUP = "java-transactions-check-group";
    private static final int PARTITIONS = 2;
    /** Records per transaction, spread over the partitions by key. */
    private static final int PER_TXN = 50;

    private TransactionsCheck() {}

    public static void main(String[] args) throws Exception {
        Log.quiet();
        if (args.length != 1) {
            System.err.println("usage: TransactionsCheck BOOTSTRAP");
            System.exit(2);
        }
        try {
            run(args[0]);
        } catch (Throwable e) {
            System.err.println("FAILED: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    private static void run(String bootstrap) throws Exception {
        createTopic(bootstrap);
        List<TopicPartition> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new TopicPartition(TOPIC, p));
        }
        TreeSet<String> committed = new TreeSet<>();
        TreeSet<String> all = new TreeSet<>();
        ConsumerGroupMetadata group = new ConsumerGroupMetadata(GROUP);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps(bootstrap))) {
            producer.initTransactions();
            ok("initTransactions (transactional.id " + TRANSACTIONAL_ID + ")");

            // 1: committed, with group offsets 10 on every partition.
            producer.beginTransaction();
            send(producer, "committed-1", committed, all);
            producer.sendOffsetsToTransaction(offsets(partitions, 10), group);
            producer.commitTransaction();
            // 2: aborted after its records (and offsets 20) reached the broker.
            producer.beginTransaction();
            send(producer, "aborted-2", null, all);
            producer.sendOffsetsToTransaction(offsets(partitions, 20), group);
            producer.flush();
            producer.abortTransaction();
            // 3: committed.
            producer.beginTransaction();
            send(producer, "committed-3", committed, all);
            producer.commitTransaction();
            ok("transactions committed, aborted, committed: " + 2 * PER_TXN + " committed records, "
                    + PER_TXN + " aborted");

            checkRead(bootstrap, partitions, "read_committed", committed);
            checkRead(bootstrap, partitions, "read_uncommitted", all);
            checkGroupOffsets(bootstrap, partitions, 10);

            // 4: left open, its records on the broker: read_committed stops at the last stable
            // offset (the open transaction's first offset), so it reads exactly what it read
            // before; read_uncommitted already sees them.
            producer.beginTransaction();
            TreeSet<String> open = new TreeSet<>(all);
            send(producer, "open-4", null, open);
            producer.flush();
            checkRead(bootstrap, partitions, "read_committed", committed);
            checkRead(bootstrap, partitions, "read_uncommitted", open);
            ok("an open transaction: read_committed stops at the last stable offset");

            // A second producer with the same transactional id aborts transaction 4 and fences
            // the first producer.
            try (KafkaProducer<String, String> second = new KafkaProducer<>(producerProps(bootstrap))) {
                second.initTransactions();
                try {
                    producer.commitTransaction();
                    throw new AssertionError("the fenced producer committed");
                } catch (ProducerFencedException expected) {
                    ok("a second producer with the same transactional id fences the first");
                }
                second.beginTransaction();
                send(second, "committed-5", committed, all);
                second.sendOffsetsToTransaction(offsets(partitions, 30), group);
                second.commitTransaction();
            }
            // Records of transaction 4 stay in the log as aborted records.
            all.addAll(open);
        } catch (ProducerFencedException e) {
            // close() of the fenced producer is fine; anything thrown earlier is a failure.
            throw new AssertionError("unexpected fencing", e);
        }
        checkRead(bootstrap, partitions, "read_committed", committed);
        checkRead(bootstrap, partitions, "read_uncommitted", all);
        checkGroupOffsets(bootstrap, partitions, 30);
        ok("after fencing: the open transaction was aborted, the new producer's commit is visible");
    }

    private static void createTopic(String bootstrap) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            try {
                admin.createTopics(List.of(new NewTopic(TOPIC, PARTITIONS, (short) 1))).all().get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
    }

    private static Properties producerProps(String bootstrap) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, TRANSACTIONAL_ID);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        return props;
    }

    /** Sends PER_TXN records valued "PREFIX-i"; adds the values to the given sets (null: none). */
    private static void send(KafkaProducer<String, String> producer, String prefix,
            TreeSet<String> visible, TreeSet<String> all) {
        for (int i = 0; i < PER_TXN; i++) {
            String value = prefix + "-" + i;
            producer.send(new ProducerRecord<>(TOPIC, "key-" + i, value));
            if (visible != null) {
                visible.add(value);
            }
            all.add(value);
        }
    }

    private static Map<TopicPartition, OffsetAndMetadata> offsets(List<TopicPartition> partitions, long offset) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (TopicPartition tp : partitions) {
            offsets.put(tp, new OffsetAndMetadata(offset));
        }
        return offsets;
    }

    /**
     * Reads every partition from the beginning up to its end offset for this isolation level
     * (read_committed: the last stable offset) and checks the values read are exactly
     * {@code expected}, each once.
     */
    private static void checkRead(String bootstrap, List<TopicPartition> partitions, String isolation,
            TreeSet<String> expected) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        List<String> read = new ArrayList<>();
        Map<TopicPartition, Long> end;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            end = consumer.endOffsets(partitions);
            long deadline = System.currentTimeMillis() + 60_000;
            while (!reached(consumer, end)) {
                check(System.currentTimeMillis() < deadline, isolation + ": end offsets " + end
                        + " not reached in 60 s; read " + read.size() + " records");
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    read.add(r.value());
                }
            }
            for (TopicPartition tp : partitions) {
                check(consumer.position(tp) == end.get(tp), isolation + ": position of " + tp + " is "
                        + consumer.position(tp) + ", past its end offset " + end.get(tp));
            }
        }
        TreeSet<String> distinct = new TreeSet<>(read);
        check(distinct.size() == read.size(), isolation + ": " + (read.size() - distinct.size())
                + " records read twice");
        if (!distinct.equals(expected)) {
            TreeSet<String> extra = new TreeSet<>(distinct);
            extra.removeAll(expected);
            TreeSet<String> missing = new TreeSet<>(expected);
            missing.removeAll(distinct);
            throw new AssertionError(isolation + ": read " + distinct.size() + " records, expected "
                    + expected.size() + "; unexpected " + extra + ", missing " + missing);
        }
        ok(isolation + " consumer: exactly the " + expected.size() + " expected records (end offsets " + end + ")");
    }

    private static boolean reached(KafkaConsumer<String, String> consumer, Map<TopicPartition, Long> end) {
        for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
            if (consumer.position(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    private static void checkGroupOffsets(String bootstrap, List<TopicPartition> partitions, long expected)
            throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata().get();
            for (TopicPartition tp : partitions) {
                OffsetAndMetadata o = offsets.get(tp);
                check(o != null && o.offset() == expected, "group offset of " + tp + ": expected "
                        + expected + ", got " + o);
            }
        }
        ok("group offsets sent with the transactions: " + expected + " on every partition (aborted ones dropped)");
    }

    private static void check(boolean condition, String what) {
        ClientsCheck.check(condition, what);
    }

    private static void ok(String what) {
        ClientsCheck.ok(what);
    }
}
