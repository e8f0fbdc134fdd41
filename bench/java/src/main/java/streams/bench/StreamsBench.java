package streams.bench;

import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Pattern;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Java Kafka Streams application of the side-by-side benchmark: one workload per run, with
 * the topologies of the Rust side (bench/src/app.rs). Keys are Integer, values String (the
 * harness's input), counts Long.
 *
 * <p>It runs from the start of its input until the stream threads' {@code process-total}
 * reaches {@code --expect} (every input record, and every repartitioned record, processed),
 * then closes (leaving the group), which flushes the caches and the producer and commits. Phase {@code restore}
 * starts on deleted local state and stops once the instance is RUNNING with {@code --expect}
 * changelog records restored. Phase {@code crash} runs like {@code run}, then halts the JVM
 * without closing, as a kill would (the {@code crash-restore} workload restarts on its state).
 * Default commit interval and cache; the only settings made are
 * application.id, bootstrap.servers and state.dir.
 *
 * <p>Prints one JSON line on stdout: {@code {"processed":N,"app_s":S,"restored":R}}, where
 * app_s is the time from {@code start()} to done (before close for the restore phase).
 *
 * <p>Usage: {@code StreamsBench --workload W --bootstrap B --input T --output T --app-id A
 * --state-dir D --expect N [--table T] [--phase run|build|crash|restore] [--timeout-s S]}
 */
public final class StreamsBench {
    private static final Pattern WHITESPACE = Pattern.compile("\\s+");
    /**
     * Close leaving the group, as this project's close does: by default Kafka Streams stays a
     * member until its session times out (45 s), which the next instance of the same
     * application (the restore phase) would wait for.
     */
    private static final CloseOptions CLOSE =
            CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP);

    private StreamsBench() {}

    public static void main(String[] argv) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        Map<String, String> args = parse(argv);
        String workload = required(args, "workload");
        String phase = args.getOrDefault("phase", "run");
        long expect = Long.parseLong(required(args, "expect"));
        long timeoutMs = Long.parseLong(args.getOrDefault("timeout-s", "1200")) * 1000;

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, required(args, "app-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, required(args, "state-dir"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                args.getOrDefault("guarantee", "at_least_once"));
        int standbys = Integer.parseInt(args.getOrDefault("standbys", "0"));
        if (phase.equals("failover")) {
            // The settings of the Rust side's failover phase (bench/src/failover.rs).
            props.put(StreamsConfig.NUM_STANDBY_REPLICAS_CONFIG, standbys);
            props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
            props.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 10000);
            props.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
        }
        if (workload.equals("crash-restore")) {
            // The restart waits for the dead member's session to end before it is assigned
            // anything: the brokers' least session timeout, as on the Rust side (bench/src/app.rs).
            props.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 6000);
            props.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
        }

        StreamsBuilder builder = new StreamsBuilder();
        build(builder, workload, required(args, "input"), required(args, "output"),
                args.get("table"));
        KafkaStreams streams = new KafkaStreams(builder.build(), props);

        AtomicReference<Throwable> failure = new AtomicReference<>();
        streams.setUncaughtExceptionHandler(e -> {
            failure.set(e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        AtomicLong restored = new AtomicLong();
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {}

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long end, long n) {}

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                restored.addAndGet(total);
            }
        });

        long t0 = System.nanoTime();
        streams.start();
        if (phase.equals("failover")) {
            serveUntilKilled(streams, failure, standbys > 0, timeoutMs);
        }
        long deadline = System.currentTimeMillis() + timeoutMs;
        long processed = 0;
        while (true) {
            if (failure.get() != null) {
                fail(streams, "the application failed: " + failure.get());
            }
            if (streams.state() == KafkaStreams.State.ERROR
                    || streams.state() == KafkaStreams.State.NOT_RUNNING) {
                fail(streams, "the application stopped: " + streams.state());
            }
            if (System.currentTimeMillis() > deadline) {
                fail(streams, "timed out; processed " + processTotal(streams) + " of " + expect);
            }
            if (phase.equals("restore")) {
                if (streams.state() == KafkaStreams.State.RUNNING && restored.get() >= expect) {
                    break;
                }
            } else {
                processed = processTotal(streams);
                if (processed >= expect) {
                    break;
                }
            }
            Thread.sleep(20);
        }
        double appSeconds = (System.nanoTime() - t0) / 1e9;
        if (phase.equals("crash")) {
            // Everything processed; a few commit intervals for the last one to commit, then the
            // JVM halts without closing anything (no shutdown hooks), as a kill leaves it.
            Thread.sleep(2000);
            System.out.printf(Locale.ROOT, "{\"processed\":%d,\"app_s\":%.3f,\"restored\":%d}%n",
                    processed, appSeconds, restored.get());
            System.out.flush();
            Runtime.getRuntime().halt(0);
        }
        streams.close(CLOSE.withTimeout(Duration.ofSeconds(120)));
        if (!phase.equals("restore")) {
            appSeconds = (System.nanoTime() - t0) / 1e9;
        }
        System.out.printf(Locale.ROOT, "{\"processed\":%d,\"app_s\":%.3f,\"restored\":%d}%n",
                processed, appSeconds, restored.get());
        System.out.flush();
        System.exit(0);
    }

    /**
     * The failover phase: prints {@code running} once RUNNING and, with standbys, {@code warm}
     * once this instance has standby tasks and every local store partition has caught up; runs
     * until the harness kills it.
     */
    static void serveUntilKilled(KafkaStreams streams, AtomicReference<Throwable> failure,
                                 boolean standbys, long timeoutMs) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        boolean running = false;
        boolean warm = false;
        while (System.currentTimeMillis() < deadline) {
            if (failure.get() != null) {
                fail(streams, "the application failed: " + failure.get());
            }
            if (!running && streams.state() == KafkaStreams.State.RUNNING) {
                running = true;
                System.out.println("running");
                System.out.flush();
            }
            if (running && standbys && !warm) {
                boolean hasStandby = streams.metadataForLocalThreads().stream()
                        .anyMatch(t -> !t.standbyTasks().isEmpty());
                boolean caughtUp = streams.allLocalStorePartitionLags().values().stream()
                        .flatMap(m -> m.values().stream())
                        .allMatch(l -> l.offsetLag() == 0);
                if (hasStandby && caughtUp) {
                    warm = true;
                    System.out.println("warm");
                    System.out.flush();
                }
            }
            Thread.sleep(20);
        }
        fail(streams, "not killed within the timeout");
    }

    /** The workload's topology; the same nodes, in the same order, as the Rust side. */
    static void build(StreamsBuilder b, String workload, String input, String output,
                      String table) {
        Consumed<Integer, String> consumed = Consumed.with(Serdes.Integer(), Serdes.String());
        Produced<Integer, String> produced = Produced.with(Serdes.Integer(), Serdes.String());
        KStream<Integer, String> stream = b.stream(input, consumed);
        switch (workload) {
            case "passthrough":
                stream.to(output, produced);
                break;
            case "filter-map":
                stream.filter((k, v) -> k % 2 == 0)
                        .mapValues(v -> v.toUpperCase(Locale.ROOT))
                        .to(output, produced);
                break;
            case "count":
            case "restore":
            case "crash-restore":
                stream.groupByKey()
                        .count(Materialized.<Integer, Long, KeyValueStore<Bytes, byte[]>>as(
                                "counts"))
                        .toStream()
                        .to(output, Produced.with(Serdes.Integer(), Serdes.Long()));
                break;
            case "wordcount":
                stream.flatMapValues(v -> Arrays.asList(WHITESPACE.split(v)))
                        .groupBy((k, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
                        .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(
                                "counts"))
                        .toStream()
                        .to(output, Produced.with(Serdes.String(), Serdes.Long()));
                break;
            case "windowed-count":
                stream.groupByKey()
                        .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofSeconds(1)))
                        .count(Materialized.<Integer, Long, WindowStore<Bytes, byte[]>>as(
                                "counts"))
                        .toStream()
                        .to(output, Produced.with(
                                WindowedSerdes.timeWindowedSerdeFrom(Integer.class, 1000),
                                Serdes.Long()));
                break;
            case "join":
                if (table == null) {
                    throw new IllegalArgumentException("join needs --table");
                }
                KTable<Integer, String> t = b.table(table, consumed,
                        Materialized.<Integer, String, KeyValueStore<Bytes, byte[]>>as("table"));
                stream.leftJoin(t, (v, tv) -> v + "|" + (tv == null ? "null" : tv))
                        .to(output, produced);
                break;
            default:
                throw new IllegalArgumentException("unknown workload " + workload);
        }
    }

    /** Records processed by the stream threads (thread-level {@code process-total}). */
    static long processTotal(KafkaStreams streams) {
        double total = 0;
        for (Map.Entry<MetricName, ? extends Metric> e : streams.metrics().entrySet()) {
            MetricName n = e.getKey();
            if (n.name().equals("process-total") && n.group().equals("stream-thread-metrics")) {
                total += ((Number) e.getValue().metricValue()).doubleValue();
            }
        }
        return (long) total;
    }

    static void fail(KafkaStreams streams, String message) {
        System.err.println("StreamsBench: " + message);
        streams.close(CLOSE.withTimeout(Duration.ofSeconds(10)));
        System.exit(1);
    }

    static Map<String, String> parse(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --name value, got " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        return args;
    }

    static String required(Map<String, String> args, String name) {
        String v = args.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }
}
