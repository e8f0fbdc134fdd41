package streams.interop;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Java Kafka Streams against a broker: the topology of Apache Kafka's WordCountDemo (input
 * {@code streams-plaintext-input}, lower-case, split on {@code \W+}, group by word, count, output
 * {@code streams-wordcount-output} with String keys and Long values), fed known lines, checked
 * against the counts they must produce.
 *
 * <p>With {@code exactly_once_v2} as third argument the application runs with that processing
 * guarantee (transactions: the Streams producer writes output, changelog and repartition records
 * and the consumed offsets in one transaction per commit), on topics of its own, and the output
 * is read {@code read_committed}: then every word's updates must be exactly 1, 2, ..., its
 * count, in order, each once (the state-store cache is off, so every occurrence yields one
 * update; a duplicate or a lost update would show).
 *
 * <p>Usage: {@code WordCountCheck BOOTSTRAP STATE_DIR [exactly_once_v2]}. Exits 1 if the final
 * counts are not reached within two minutes or the Streams client fails.
 */
public final class WordCountCheck {
    static final String INPUT = "streams-plaintext-input";
    static final String OUTPUT = "streams-wordcount-output";
    static final String APPLICATION_ID = "streams-wordcount-interop";
    static final String EOS = StreamsConfig.EXACTLY_ONCE_V2;

    /** Apache Kafka's quickstart lines, plus case and punctuation the split must handle. */
    static final List<String> LINES = List.of(
            "all streams lead to kafka",
            "hello kafka streams",
            "join kafka summit",
            "Kafka, KAFKA! kafka? streams.",
            "hello   again\thello");

    /** What the lines above must count to (written out by hand, not computed by the check). */
    static final Map<String, Long> EXPECTED = Map.ofEntries(
            Map.entry("all", 1L),
            Map.entry("streams", 3L),
            Map.entry("lead", 1L),
            Map.entry("to", 1L),
            Map.entry("kafka", 6L),
            Map.entry("hello", 3L),
            Map.entry("join", 1L),
            Map.entry("summit", 1L),
            Map.entry("again", 1L));

    private WordCountCheck() {}

    public static void main(String[] args) throws Exception {
        Log.quiet();
        if (args.length < 2 || args.length > 3 || (args.length == 3 && !args[2].equals(EOS))) {
            System.err.println("usage: WordCountCheck BOOTSTRAP STATE_DIR [" + EOS + "]");
            System.exit(2);
        }
        try {
            run(args[0], Path.of(args[1]), args.length == 3);
        } catch (Throwable e) {
            System.err.println("FAILED: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    /** Topic or application name, with a prefix of its own for the exactly-once run. */
    static String name(String base, boolean eos) {
        return eos ? "eos-" + base : base;
    }

    /** WordCountDemo's topology. */
    static StreamsBuilder topology(boolean eos) {
        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> source = builder.stream(name(INPUT, eos));
        KTable<String, Long> counts = source
                .flatMapValues(value -> Arrays.asList(value.toLowerCase(Locale.getDefault()).split("\\W+")))
                .groupBy((key, value) -> value)
                .count();
        counts.toStream().to(name(OUTPUT, eos), Produced.with(Serdes.String(), Serdes.Long()));
        return builder;
    }

    private static void run(String bootstrap, Path stateDir, boolean eos) throws Exception {
        Files.createDirectories(stateDir);
        createTopics(bootstrap, eos);
        produceLines(bootstrap, eos);

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, name(APPLICATION_ID, eos));
        if (eos) {
            props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, EOS);
        }
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        AtomicReference<Throwable> failure = new AtomicReference<>();
        CountDownLatch running = new CountDownLatch(1);
        long started = System.currentTimeMillis();
        try (KafkaStreams streams = new KafkaStreams(topology(eos).build(), props)) {
            streams.setUncaughtExceptionHandler(e -> {
                failure.compareAndSet(null, e);
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.setStateListener((now, before) -> {
                if (now == KafkaStreams.State.RUNNING) {
                    running.countDown();
                }
                if (now == KafkaStreams.State.ERROR) {
                    failure.compareAndSet(null, new IllegalStateException("Kafka Streams went to ERROR"));
                }
            });
            streams.start();
            if (!running.await(90, TimeUnit.SECONDS)) {
                throw new AssertionError("Kafka Streams not RUNNING after 90 s (state " + streams.state() + ")");
            }
            ClientsCheck.ok("Kafka Streams RUNNING after " + (System.currentTimeMillis() - started) + " ms");
            Map<String, Long> latest = readCounts(bootstrap, failure, eos);
            ClientsCheck.ok("word count output " + new TreeMap<>(latest) + " after "
                    + (System.currentTimeMillis() - started) + " ms");
            if (eos) {
                checkTransactional(bootstrap);
            }
            streams.close(Duration.ofSeconds(30));
            streams.cleanUp();
        }
        if (failure.get() != null) {
            throw new AssertionError("Kafka Streams failed", failure.get());
        }
    }

    /**
     * The exactly-once run really used transactions: the broker lists a transactional id of the
     * application (Streams names them after the application id and the process), and describes it.
     */
    private static void checkTransactional(String bootstrap) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            List<String> ids = new ArrayList<>();
            for (TransactionListing t : admin.listTransactions().all().get()) {
                if (t.transactionalId().startsWith(name(APPLICATION_ID, true) + "-")) {
                    ids.add(t.transactionalId());
                }
            }
            ClientsCheck.check(!ids.isEmpty(), "listTransactions: no transactional id of the application");
            for (TransactionDescription d : admin.describeTransactions(ids).all().get().values()) {
                ClientsCheck.check(d.producerId() >= 0, "describeTransactions: a producer id");
            }
            ClientsCheck.ok("listTransactions/describeTransactions: the application's transactional ids " + ids);
        }
    }

    private static void createTopics(String bootstrap, boolean eos) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            for (NewTopic topic : List.of(new NewTopic(name(INPUT, eos), 2, (short) 1),
                    new NewTopic(name(OUTPUT, eos), 2, (short) 1))) {
                try {
                    admin.createTopics(List.of(topic)).all().get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        }
    }

    private static void produceLines(String bootstrap, boolean eos) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (String line : LINES) {
                producer.send(new ProducerRecord<>(name(INPUT, eos), null, line)).get();
            }
        }
        ClientsCheck.ok("produced " + LINES.size() + " lines to " + name(INPUT, eos));
    }

    /**
     * Reads the output topic until the latest count of every word equals {@link #EXPECTED}; with
     * exactly-once, read_committed, and every word's updates must be 1, 2, ..., its count.
     */
    private static Map<String, Long> readCounts(String bootstrap, AtomicReference<Throwable> failure,
            boolean eos) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, name("streams-wordcount-interop-reader", eos));
        if (eos) {
            props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        }
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class);
        Map<String, Long> latest = new HashMap<>();
        Map<String, List<Long>> updates = new TreeMap<>();
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(name(OUTPUT, eos)));
            long deadline = System.currentTimeMillis() + 120_000;
            while (!latest.equals(EXPECTED)) {
                if (failure.get() != null) {
                    throw new AssertionError("Kafka Streams failed", failure.get());
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new AssertionError("word counts after 120 s: " + new TreeMap<>(latest)
                            + ", expected " + new TreeMap<>(EXPECTED));
                }
                for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
                    latest.put(r.key(), r.value());
                    updates.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
                }
            }
        }
        if (eos) {
            for (Map.Entry<String, List<Long>> e : updates.entrySet()) {
                List<Long> want = new ArrayList<>();
                for (long n = 1; n <= EXPECTED.get(e.getKey()); n++) {
                    want.add(n);
                }
                ClientsCheck.check(e.getValue().equals(want), "read_committed updates of '" + e.getKey()
                        + "': " + e.getValue() + ", expected " + want);
            }
            ClientsCheck.ok("read_committed: every word's updates are exactly 1, 2, ..., its count, each once");
        }
        return latest;
    }
}
