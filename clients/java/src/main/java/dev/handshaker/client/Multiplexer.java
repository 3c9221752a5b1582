package dev.handshaker.client;

import dev.handshaker.v1.ConnectionFrame;
import dev.handshaker.v1.ConnectionResult;
import dev.handshaker.v1.FrameError;
import dev.handshaker.v1.HandshakeRequest;
import dev.handshaker.v1.HandshakeResponse;
import dev.handshaker.v1.HandshakeState;
import dev.handshaker.v1.HandshakerGrpc;
import dev.handshaker.v1.MultiplexRequest;
import dev.handshaker.v1.MultiplexResponse;
import io.grpc.Channel;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Multiplex streams of one gRPC channel: the handshakes of every socket whose config uses the
 * channel share {@value #STREAMS} long-lived streams, and connection id N stays on stream N %
 * {@value #STREAMS}. Each stream keeps one request in flight: the frames queued while the service
 * works on a request go out together in the next one, so batches grow with the load and the
 * service's per-message cost is shared by many handshakes. The stream's response callback hands
 * each result to the handshake waiting for its connection id, and sends the next batch.
 *
 * <p>A broken stream fails every handshake on it with its gRPC status; the next handshake opens a
 * new one. The streams end with their channel: when a {@link ManagedChannel} is shut down, each
 * stream ends once the handshakes on it have (so that {@code shutdown()} lets them finish), and
 * at once on {@code shutdownNow()}.
 */
final class Multiplexer {
  /** How many Multiplex streams a channel's handshakes share. */
  static final int STREAMS = 2;
  // A MultiplexRequest holds at most this many frames and, past the first frame, about this many
  // bytes, so that neither it nor the response that answers all its frames nears gRPC's 4 MiB
  // message limit.
  private static final int MAX_BATCH_FRAMES = 128;
  private static final int MAX_BATCH_BYTES = 1 << 20;
  // The largest MultiplexResponse accepted: MAX_BATCH_FRAMES results with a long certificate
  // chain each, and the idle-connection errors the service may add.
  private static final int MAX_RESPONSE_BYTES = 64 << 20;

  private static final ConcurrentMap<Channel, Multiplexer> BY_CHANNEL = new ConcurrentHashMap<>();

  private final Channel channel;
  private final HandshakerGrpc.HandshakerStub stub;
  // Connection ids, never reused (0 is not an id).
  private final AtomicLong nextId = new AtomicLong();
  private final Object[] slotLocks = new Object[STREAMS];
  // Guarded by slotLocks[i]: null or failed, a new stream opens on next use.
  private final MuxStream[] streams = new MuxStream[STREAMS];

  private Multiplexer(Channel channel) {
    this.channel = channel;
    this.stub = HandshakerGrpc.newStub(channel).withMaxInboundMessageSize(MAX_RESPONSE_BYTES);
    for (int i = 0; i < STREAMS; i++) {
      slotLocks[i] = new Object();
    }
  }

  /** The multiplexer of {@code channel}, created on first use. */
  static Multiplexer forChannel(Channel channel) {
    Multiplexer existing = BY_CHANNEL.get(channel);
    if (existing != null) {
      return existing;
    }
    Multiplexer created = new Multiplexer(channel);
    existing = BY_CHANNEL.putIfAbsent(channel, created);
    if (existing != null) {
      return existing;
    }
    created.watchChannel();
    return created;
  }

  /**
   * A new connection on the stream its id maps to, opening that stream if it is not running. The
   * handshake {@code timeout} starts now: it bounds every wait for an answer.
   */
  Connection connect(Duration timeout) {
    long id = nextId.incrementAndGet();
    int slot = (int) (id % STREAMS);
    MuxStream stream;
    synchronized (slotLocks[slot]) {
      stream = streams[slot];
      if (stream == null || stream.failed()) {
        stream = new MuxStream();
        streams[slot] = stream;
        stream.start();
      }
    }
    Connection connection = new Connection(id, stream, timeout);
    stream.register(id, connection.results);
    return connection;
  }

  /** Follows a managed channel's state, to end the streams when it is shut down. */
  private void watchChannel() {
    if (!(channel instanceof ManagedChannel managed)) {
      return;
    }
    try {
      ConnectivityState state = managed.getState(false);
      if (state == ConnectivityState.SHUTDOWN) {
        shutdown();
        return;
      }
      managed.notifyWhenStateChanged(state, this::watchChannel);
    } catch (UnsupportedOperationException e) {
      // A channel that does not report its state: its streams end when its calls are cancelled.
    }
  }

  /** The channel was shut down: forget this multiplexer and end each stream once it is idle. */
  private void shutdown() {
    BY_CHANNEL.remove(channel, this);
    for (int i = 0; i < STREAMS; i++) {
      MuxStream stream;
      synchronized (slotLocks[i]) {
        stream = streams[i];
      }
      if (stream != null) {
        stream.drain();
      }
    }
  }

  /** One Multiplex stream and the connections on it. */
  private final class MuxStream
      implements ClientResponseObserver<MultiplexRequest, MultiplexResponse> {
    private final Object lock = new Object();
    // Serializes the calls on the request observer, which is not thread-safe. Never taken while
    // holding lock.
    private final Object sendLock = new Object();
    private volatile ClientCallStreamObserver<MultiplexRequest> requests;
    // Why the stream failed; null while it runs. Written under lock.
    private volatile Status failure;

    // Guarded by lock.
    private final ArrayDeque<ConnectionFrame> queue = new ArrayDeque<>();
    private Map<Long, BlockingQueue<Object>> waiters = new HashMap<>(); // null once failed
    private boolean inFlight; // a request is unanswered
    private boolean draining; // the channel was shut down: end when no connection is left

    void start() {
      try {
        stub.multiplex(this);
      } catch (RuntimeException e) {
        fail(Status.fromThrowable(e));
      }
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<MultiplexRequest> requestStream) {
      requests = requestStream;
    }

    boolean failed() {
      return failure != null;
    }

    void register(long id, BlockingQueue<Object> results) {
      synchronized (lock) {
        if (waiters != null) {
          waiters.put(id, results);
        }
      }
    }

    void unregister(long id) {
      boolean idle;
      synchronized (lock) {
        if (waiters == null) {
          return;
        }
        waiters.remove(id);
        idle = draining && waiters.isEmpty();
      }
      if (idle) {
        fail(Status.UNAVAILABLE.withDescription("the channel to the handshaker service was shut down"));
      }
    }

    void drain() {
      boolean idle;
      synchronized (lock) {
        draining = true;
        idle = waiters != null && waiters.isEmpty();
      }
      if (idle) {
        fail(Status.UNAVAILABLE.withDescription("the channel to the handshaker service was shut down"));
      }
    }

    /** Queues a frame, and sends it at once when no request is in flight. */
    void enqueue(ConnectionFrame frame) throws HandshakerServiceException {
      List<ConnectionFrame> batch;
      synchronized (lock) {
        Status failed = failure;
        if (failed != null) {
          throw new HandshakerServiceException(failed);
        }
        queue.add(frame);
        batch = takeBatch();
      }
      if (batch != null) {
        send(batch);
      }
    }

    /** The next batch when no request is in flight (it then is); else null. Holds lock. */
    private List<ConnectionFrame> takeBatch() {
      if (inFlight || queue.isEmpty() || failure != null) {
        return null;
      }
      List<ConnectionFrame> batch = new ArrayList<>(Math.min(queue.size(), MAX_BATCH_FRAMES));
      long size = 0;
      while (!queue.isEmpty()
          && batch.size() < MAX_BATCH_FRAMES
          && (batch.isEmpty() || size < MAX_BATCH_BYTES)) {
        ConnectionFrame frame = queue.poll();
        size += frame.getSerializedSize();
        batch.add(frame);
      }
      inFlight = true;
      return batch;
    }

    private void send(List<ConnectionFrame> batch) {
      synchronized (sendLock) {
        if (failure != null) {
          return;
        }
        try {
          requests.onNext(MultiplexRequest.newBuilder().addAllFrames(batch).build());
        } catch (RuntimeException e) {
          fail(Status.fromThrowable(e));
        }
      }
    }

    @Override
    public void onNext(MultiplexResponse response) {
      List<ConnectionFrame> batch;
      synchronized (lock) {
        if (waiters == null) {
          return;
        }
        for (ConnectionResult result : response.getResultsList()) {
          // Results nobody waits for (an aborted or finished connection's) are dropped.
          BlockingQueue<Object> waiter = waiters.get(result.getConnectionId());
          if (waiter != null) {
            waiter.offer(result);
          }
        }
        // Every request is answered by one response. (An unsolicited one, an idle connection's
        // expiry, may let one request go early: harmless.)
        inFlight = false;
        batch = takeBatch();
      }
      if (batch != null) {
        send(batch);
      }
    }

    @Override
    public void onError(Throwable error) {
      fail(Status.fromThrowable(error));
    }

    @Override
    public void onCompleted() {
      fail(Status.INTERNAL.withDescription("the service ended the Multiplex stream"));
    }

    /**
     * Records the stream's first failure, wakes every waiting handshake with it and ends the
     * gRPC call (the service frees the connections still on it).
     */
    void fail(Status status) {
      Map<Long, BlockingQueue<Object>> waiting;
      synchronized (lock) {
        if (failure != null) {
          return;
        }
        failure = status;
        waiting = waiters;
        waiters = null;
        queue.clear();
      }
      for (BlockingQueue<Object> waiter : waiting.values()) {
        waiter.offer(status);
      }
      synchronized (sendLock) {
        ClientCallStreamObserver<MultiplexRequest> call = requests;
        if (call != null) {
          // Cancels the call; a no-op when it has already ended.
          call.onError(status.asRuntimeException());
        }
      }
    }
  }

  /** One handshake's connection on a Multiplex stream. Used by one thread at a time. */
  static final class Connection implements HandshakeExchange {
    private final long id;
    private final MuxStream stream;
    private final long deadline;
    // Results for this connection, and the stream's status if it fails.
    private final BlockingQueue<Object> results = new LinkedBlockingQueue<>();
    // True while the service holds the connection: a frame went out and no final answer
    // (COMPLETE, FAILED or an error) came back.
    private boolean live;

    private Connection(long id, MuxStream stream, Duration timeout) {
      this.id = id;
      this.stream = stream;
      this.deadline = System.nanoTime() + timeout.toNanos();
    }

    long id() {
      return id;
    }

    @Override
    public HandshakeResponse exchange(HandshakeRequest request) throws IOException {
      Object early = results.poll();
      if (early != null) {
        // A result while no frame was in flight: the service ended the connection (it was idle
        // too long), or the stream failed.
        return answer(early);
      }
      long remaining = deadline - System.nanoTime();
      if (remaining <= 0) {
        throw timedOut();
      }
      try {
        stream.enqueue(ConnectionFrame.newBuilder().setConnectionId(id).setRequest(request).build());
      } catch (HandshakerServiceException e) {
        live = false;
        throw e;
      }
      live = true;
      Object item;
      try {
        item = results.poll(remaining, TimeUnit.NANOSECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted while waiting for the handshaker service");
      }
      if (item == null) {
        // The connection stays live in the service: close() aborts it.
        throw timedOut();
      }
      return answer(item);
    }

    private HandshakeResponse answer(Object item) throws HandshakerServiceException {
      if (item instanceof Status status) {
        live = false; // the broken stream took the connection with it
        throw new HandshakerServiceException(status);
      }
      ConnectionResult result = (ConnectionResult) item;
      if (result.hasError()) {
        live = false;
        throw new HandshakerServiceException(status(result.getError()));
      }
      if (!result.hasResponse()) {
        throw new HandshakerServiceException(
            "a Multiplex result with neither a response nor an error");
      }
      HandshakeResponse response = result.getResponse();
      if (response.getStep().getState() != HandshakeState.HANDSHAKE_STATE_NEED_INPUT) {
        live = false; // the service has freed the connection
      }
      return response;
    }

    private static HandshakerServiceException timedOut() {
      return new HandshakerServiceException(
          Status.DEADLINE_EXCEEDED.withDescription(
              "no answer from the handshaker service within the handshake timeout"));
    }

    /**
     * Stops waiting for results and, when the service still holds the connection (the handshake
     * timed out or failed on this side), frees it with an abort frame, without waiting for the
     * answer.
     */
    @Override
    public void close() {
      stream.unregister(id);
      if (live) {
        live = false;
        try {
          stream.enqueue(ConnectionFrame.newBuilder().setConnectionId(id).setAbort(true).build());
        } catch (HandshakerServiceException e) {
          // The stream failed, and ending it freed the connection.
        }
      }
    }
  }

  /** The status of a connection the service ended for misuse. */
  static Status status(FrameError error) {
    int code = error.getCode();
    if (code <= 0 || code >= Status.Code.values().length) {
      // An error must not read as success, nor lose an unknown code.
      return Status.UNKNOWN.withDescription(
          "code " + Integer.toUnsignedString(code) + ": " + error.getMessage());
    }
    return Status.fromCodeValue(code).withDescription(error.getMessage());
  }
}
