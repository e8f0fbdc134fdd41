# The three-node cluster mode of scripts/kafka-testbed: `start --nodes 3`, kill-node, start-node, its stop.
# shellcheck shell=bash
#
# A cluster: NODES nodes, each a combined broker+controller and a controller voter, node id N
# in NODE_DIR[N] = WORK/nodeN. The functions below use the variables read_state fills.
# Sourced by scripts/kafka-testbed; uses its variables and helpers (log, die, need,
# read_state, node_running, free_ports, python_probe, broker_ready, start_failed, ...).

# Writes the cluster state (the variables read_state fills) atomically.
write_cluster_state() {
    local n
    {
        echo "nodes=$NODES"
        echo "work=$WORK"
        echo "bootstrap=$BOOTSTRAP"
        echo "heap=$NODE_HEAP"
        for ((n = 1; n <= NODES; n++)); do
            echo "node.$n.pid=${NODE_PID[n]}"
            echo "node.$n.port=${NODE_PORT[n]}"
            echo "node.$n.controller_port=${NODE_CONTROLLER_PORT[n]}"
            echo "node.$n.dir=${NODE_DIR[n]}"
            echo "node.$n.data=${NODE_DATA[n]}"
        done
    } >"$STATE_FILE.tmp"
    mv "$STATE_FILE.tmp" "$STATE_FILE"
}

# Creates a cluster's internal topics __consumer_offsets and __transaction_state (replication
# factor 3 needs all three brokers, so a test that kills one must not be the first to need
# them): FindCoordinator v1 requests for a group and for a transactional id to the broker at
# PORT ($1), repeated until both name a coordinator. Returns 1 if not within $2 seconds.
create_internal_topics() {
    python3 - "$1" "$2" <<'EOF'
import socket, struct, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
client = b"kafka-testbed"
key = b"kafka-testbed-probe"
def find_coordinator(key_type):
    # header v1: api_key=10 (FindCoordinator), api_version=1; body: key, key_type (0 group, 1 txn)
    body = (struct.pack(">hhih", 10, 1, 7, len(client)) + client +
            struct.pack(">h", len(key)) + key + struct.pack(">b", key_type))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(4096)
            if not chunk:
                return -1
            buf += chunk
    # response: correlation_id, throttle_time_ms, error_code, ...
    return struct.unpack_from(">h", buf, 12)[0]
pending = [0, 1]
while pending:
    try:
        pending = [t for t in pending if find_coordinator(t) != 0]
    except (OSError, struct.error):
        pass
    if pending:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.2)
EOF
}

# Starts node N's JVM in the background; sets LAUNCHED_PID.
launch_node() {
    local n=$1 dir cp heap
    dir=${NODE_DIR[$1]}
    cp=$(cat "$WORK/classpath.txt")
    # shellcheck disable=SC2206 # word splitting of the heap flags is intended
    heap=($NODE_HEAP)
    # C1 JIT only: three JVMs start on two cores in about 9 s instead of 16 s, and a test
    # cluster's load does not need C2's code (-XX:TieredStopAtLevel=4 in KAFKA_TESTBED_HEAP,
    # which comes after it, turns C2 back on). stdin/stdout/stderr detached so that
    # "$(kafka-testbed start ...)" does not wait for the JVM; a session of its own so that a
    # signal to the caller's process group (a test killed by `timeout`) does not take the
    # node with it. This shell has no job control, so the background child is no group
    # leader and setsid execs java in place: $! stays the JVM's pid.
    setsid nohup java -XX:TieredStopAtLevel=1 "${heap[@]}" -XX:+ExitOnOutOfMemoryError -cp "$cp" \
        "-Dlog4j2.configurationFile=$dir/log4j2.properties" "-Dkafka.logs.dir=$dir" \
        -Djava.awt.headless=true kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/broker.out" 2>&1 &
    LAUNCHED_PID=$!
}

# Waits until each node given answers a Metadata request listing all NODES brokers (a broker
# answers only once it is registered and unfenced). Dies with the log's end if a node's JVM
# exits or TIMEOUT passes.
wait_nodes_ready() {
    local t0=$SECONDS n pending=("$@") still
    while :; do
        still=()
        for n in "${pending[@]}"; do
            broker_ready "${NODE_PORT[n]}" "$NODES" && continue
            if ! kill -0 "${NODE_PID[n]}" 2>/dev/null; then
                print_log_tail "${NODE_DIR[n]}"
                die "node $n exited during start-up (see the log above)"
            fi
            still+=("$n")
        done
        [ ${#still[@]} -gt 0 ] || return 0
        pending=("${still[@]}")
        if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then
            for n in "${pending[@]}"; do print_log_tail "${NODE_DIR[n]}"; done
            die "node(s) ${pending[*]} did not answer with $NODES brokers within ${TIMEOUT}s (see the log above)"
        fi
        sleep 0.5
    done
}

# Reads the state of a running cluster for kill-node/start-node N; dies unless there is one
# and N is one of its nodes.
read_cluster_state() {
    local n=$1
    read_state || die "no test bed recorded in $STATE_DIR"
    [ "$NODES" -gt 1 ] || die "the test bed in $STATE_DIR is a single node; kill-node and start-node need 'start --nodes 3'"
    if ! [[ "$n" =~ ^[1-9]$ ]] || [ "$n" -gt "$NODES" ]; then
        die "no node '$n': the nodes are 1..$NODES"
    fi
}

cmd_start_cluster() {
    local nodes=$1
    begin_start
    local work=$START_WORK
    local cp
    cp=$(cat "$work/classpath.txt")

    # Two ports a node (PLAINTEXT, CONTROLLER), below the ephemeral range: see free_ports.
    local ports
    read -r -a ports < <(free_ports $((2 * nodes)) fixed)
    [ "${#ports[@]}" -eq $((2 * nodes)) ] || die "could not pick free ports"

    NODES=$nodes WORK=$work NODE_HEAP=$CLUSTER_HEAP BOOTSTRAP=''
    NODE_PID=() NODE_PORT=() NODE_CONTROLLER_PORT=() NODE_DIR=() NODE_DATA=()
    local n voters=''
    for ((n = 1; n <= nodes; n++)); do
        NODE_PORT[n]=${ports[2 * n - 2]}
        NODE_CONTROLLER_PORT[n]=${ports[2 * n - 1]}
        NODE_DIR[n]=$work/node$n
        NODE_DATA[n]=$work/node$n/data
        voters+="${voters:+,}$n@127.0.0.1:${NODE_CONTROLLER_PORT[n]}"
        BOOTSTRAP+="${BOOTSTRAP:+,}127.0.0.1:${NODE_PORT[n]}"
    done

    for ((n = 1; n <= nodes; n++)); do
        mkdir -p "${NODE_DATA[n]}"
        cat >"${NODE_DIR[n]}/server.properties" <<EOF
# generated by scripts/kafka-testbed (node $n of a $nodes-node cluster)
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${NODE_PORT[n]},CONTROLLER://127.0.0.1:${NODE_CONTROLLER_PORT[n]}
advertised.listeners=PLAINTEXT://127.0.0.1:${NODE_PORT[n]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${NODE_DATA[n]}
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=3
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
# A killed node is fenced (its partitions led elsewhere, dropped from the ISRs) after 6 s
# without a heartbeat instead of 9 s.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
num.network.threads=2
num.io.threads=4
EOF
        write_log4j_config "${NODE_DIR[n]}"
    done

    local cluster_id
    cluster_id=$(make_cluster_id)
    # StorageTool is a short-lived tool: C1 JIT and serial GC make it start faster. One per
    # node, all at once.
    local format_pids=() failed=()
    for ((n = 1; n <= nodes; n++)); do
        java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$cp" \
            "-Dlog4j2.configurationFile=${NODE_DIR[n]}/log4j2.properties" "-Dkafka.logs.dir=${NODE_DIR[n]}" \
            -Djava.awt.headless=true kafka.tools.StorageTool format -t "$cluster_id" \
            -c "${NODE_DIR[n]}/server.properties" >>"${NODE_DIR[n]}/broker.out" 2>&1 &
        format_pids[n]=$!
    done
    for ((n = 1; n <= nodes; n++)); do
        wait "${format_pids[n]}" || failed+=("$n")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        for n in "${failed[@]}"; do print_log_tail "${NODE_DIR[n]}"; done
        die "StorageTool format failed for node(s) ${failed[*]}"
    fi

    log "starting a $nodes-node Kafka cluster on $BOOTSTRAP in $work (heap $NODE_HEAP a node)"
    for ((n = 1; n <= nodes; n++)); do
        launch_node "$n"
        NODE_PID[n]=$LAUNCHED_PID
        STARTED_PIDS+=("$LAUNCHED_PID")
    done
    write_cluster_state

    local t0=$SECONDS
    local all_nodes=()
    for ((n = 1; n <= nodes; n++)); do all_nodes+=("$n"); done
    wait_nodes_ready "${all_nodes[@]}"
    create_internal_topics "${NODE_PORT[1]}" $((TIMEOUT > SECONDS - t0 ? TIMEOUT - (SECONDS - t0) : 1)) ||
        die "the internal topics __consumer_offsets and __transaction_state were not created within ${TIMEOUT}s"
    trap - EXIT
    log "the Kafka cluster is up after $((SECONDS - t0))s (pids ${NODE_PID[*]}, logs $work/node*/broker.log)"
    for ((n = 1; n <= nodes; n++)); do
        echo "node.$n.bootstrap.servers=127.0.0.1:${NODE_PORT[n]}"
    done
    echo "bootstrap.servers=$BOOTSTRAP"
}

cmd_kill_node() {
    local n=$1 pid i
    read_cluster_state "$n"
    pid=${NODE_PID[n]}
    node_running "$n" || die "node $n (pid $pid) is not running"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        node_running "$n" || break
        sleep 0.1
    done
    node_running "$n" && die "node $n (pid $pid) is still running 10s after SIGKILL"
    log "killed node $n (pid $pid, 127.0.0.1:${NODE_PORT[n]}); '$0 start-node $n' starts it again"
}

cmd_start_node() {
    local n=$1
    read_cluster_state "$n"
    node_running "$n" && die "node $n is already running (pid ${NODE_PID[n]})"
    need java "Java 17+ is needed to run the Kafka broker"
    need python3
    if [ ! -f "${NODE_DIR[n]}/server.properties" ] || [ ! -f "$WORK/classpath.txt" ]; then
        die "node $n's files are gone (${NODE_DIR[n]})"
    fi

    log "starting node $n again on 127.0.0.1:${NODE_PORT[n]} (data ${NODE_DATA[n]})"
    launch_node "$n"
    NODE_PID[n]=$LAUNCHED_PID
    write_cluster_state
    # If it does not come up, kill it again (the state then records a node that is not running).
    STARTED_PIDS=("$LAUNCHED_PID")
    trap start_failed EXIT

    local t0=$SECONDS
    wait_nodes_ready "$n"
    # Back in the ISR of every partition it replicates (as its own metadata says).
    until python_probe "${NODE_PORT[n]}" "$NODES" "$n"; do
        if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then
            die "node $n answers but is not back in the ISR of all its partitions after ${TIMEOUT}s"
        fi
        sleep 0.5
    done
    trap - EXIT
    log "node $n is up and in sync after $((SECONDS - t0))s (pid ${NODE_PID[n]})"
    echo "node.$n.bootstrap.servers=127.0.0.1:${NODE_PORT[n]}"
    echo "bootstrap.servers=$BOOTSTRAP"
}

# SIGTERM to every running node at once (a node left alone without a controller quorum would
# wait for it), SIGKILL to those still running after 30s.
stop_cluster() {
    local n i running=() pids=()
    for ((n = 1; n <= NODES; n++)); do
        if node_running "$n"; then
            kill -TERM "${NODE_PID[n]}" 2>/dev/null || true
            running+=("$n")
            pids+=("${NODE_PID[n]}")
        fi
    done
    if [ ${#running[@]} -eq 0 ]; then
        log "no node of the recorded cluster is running"
        return 0
    fi
    log "stopping Kafka node(s) ${running[*]} (pids ${pids[*]})"
    local sig=TERM
    for sig in TERM KILL; do
        if [ "$sig" = KILL ]; then
            log "node(s) ${running[*]} did not stop within 30s; sending SIGKILL"
            for n in "${running[@]}"; do kill -KILL "${NODE_PID[n]}" 2>/dev/null || true; done
        fi
        for ((i = 0; i < 300; i++)); do
            local still=()
            for n in "${running[@]}"; do node_running "$n" && still+=("$n"); done
            running=(${still[@]+"${still[@]}"})
            [ ${#running[@]} -gt 0 ] || return 0
            sleep 0.1
        done
    done
    die "could not kill node(s) ${running[*]}"
}
