package streams.interop;

/** Logging set-up shared by the checks: slf4j-simple, warnings and errors only, on stderr. */
final class Log {
    private Log() {}

    /** Must run before the first Kafka class creates a logger. */
    static void quiet() {
        String level = System.getProperty("interop.log.level", "warn");
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", level);
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
    }
}
