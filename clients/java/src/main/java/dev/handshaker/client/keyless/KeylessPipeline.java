package dev.handshaker.client.keyless;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.DecryptRequest;
import dev.handshaker.v1.GetCredentialRequest;
import dev.handshaker.v1.GetCredentialResponse;
import dev.handshaker.v1.KeyOperationsGrpc;
import dev.handshaker.v1.OperateRequest;
import dev.handshaker.v1.OperateResponse;
import dev.handshaker.v1.SignRequest;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Sign, Decrypt and GetCredential multiplexed on one KeyOperations.Operate stream, for a busy
 * caller (a TLS server doing many handshakes at once): one HTTP/2 stream instead of one per key
 * operation. Thread-safe; any number of threads may call at once.
 *
 * <ul>
 *   <li>Each operation gets the next id of a counter that never restarts, so ids are unique on
 *       every stream (the service refuses an id that is still running) and the answers, which
 *       come as operations finish, are matched by id.
 *   <li>At most {@link #MAX_IN_FLIGHT} operations are on the stream at once (the service runs 64
 *       per stream and reads no further until one finishes), and a request is written only while
 *       gRPC says the stream {@linkplain ClientCallStreamObserver#isReady() is ready}; the rest
 *       wait here, in order, so a burst is neither buffered without bound nor refused.
 *   <li>A failed operation (the stream's OperationError) fails its own future with a {@link
 *       KeylessException} of that status code and message; the others go on.
 *   <li>Each operation has a deadline (waiting here included): past it, the future fails with
 *       DEADLINE_EXCEEDED and the answer, should it come, is dropped. Its slot is freed only by
 *       that answer or the stream's end, since the service is still running it.
 *   <li>A broken stream (service gone, connection reset) fails every operation waiting on it at
 *       once with the stream's status (UNAVAILABLE for a lost connection); the next call opens a
 *       new stream.
 * </ul>
 *
 * <p>Make one with {@link KeylessClient#pipelined()} (which also routes that client's Sign and
 * Decrypt through it) or {@link #over}; {@link #close()} cancels the stream.
 */
public final class KeylessPipeline implements AutoCloseable {
  /** The service's per-stream limit of running operations (DEFAULT_MAX_IN_FLIGHT in the service). */
  public static final int MAX_IN_FLIGHT = 64;

  private final KeyOperationsGrpc.KeyOperationsStub stub;
  private final Duration timeout;
  private final int maxInFlight;
  private final ScheduledThreadPoolExecutor timer;

  private final Object lock = new Object();
  // Guarded by lock.
  private long nextId = 1;
  private Stream stream;
  private final ArrayDeque<Operation<?>> queued = new ArrayDeque<>();
  private boolean closed;
  private int peakRunning;

  private KeylessPipeline(Channel channel, Duration timeout, int maxInFlight) {
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive");
    }
    if (maxInFlight < 1) {
      throw new IllegalArgumentException("maxInFlight must be at least 1");
    }
    this.stub = KeyOperationsGrpc.newStub(Objects.requireNonNull(channel));
    this.timeout = timeout;
    this.maxInFlight = maxInFlight;
    this.timer = new ScheduledThreadPoolExecutor(1, r -> {
      Thread t = new Thread(r, "keyless-pipeline-deadlines");
      t.setDaemon(true);
      return t;
    });
    // A deadline that did not fire must not keep its operation reachable until it would have.
    timer.setRemoveOnCancelPolicy(true);
  }

  /** A pipeline on the caller's channel (which stays the caller's), each operation with {@code timeout}. */
  public static KeylessPipeline over(Channel channel, Duration timeout) {
    return new KeylessPipeline(channel, timeout, MAX_IN_FLIGHT);
  }

  /** As {@link #over(Channel, Duration)}, with fewer operations in flight (a service run with a lower limit). */
  public static KeylessPipeline over(Channel channel, Duration timeout, int maxInFlight) {
    return new KeylessPipeline(channel, timeout, Math.min(maxInFlight, MAX_IN_FLIGHT));
  }

  public Duration timeout() {
    return timeout;
  }

  // --- operations -----------------------------------------------------------------------

  CompletableFuture<byte[]> submitSign(SignRequest.Builder sign, Duration timeout) {
    return submit(OperateRequest.newBuilder().setSign(sign),
        OperateResponse.ResultCase.SIGN, r -> r.getSign().getSignature().toByteArray(), timeout);
  }

  /** Signs {@code message} with a TLS signature scheme; the service hashes it. */
  public CompletableFuture<byte[]> signAsync(KeyRef key, int signatureScheme, byte[] message, Duration timeout) {
    return submit(OperateRequest.newBuilder().setSign(SignRequest.newBuilder()
            .setKey(key.toProto())
            .setSignatureScheme(signatureScheme)
            .setMessage(ByteString.copyFrom(message))),
        OperateResponse.ResultCase.SIGN, r -> r.getSign().getSignature().toByteArray(), timeout);
  }

  /** Signs the scheme's hash of the content, computed by the caller (not for ed25519). */
  public CompletableFuture<byte[]> signDigestAsync(KeyRef key, int signatureScheme, byte[] digest, Duration timeout) {
    return submit(OperateRequest.newBuilder().setSign(SignRequest.newBuilder()
            .setKey(key.toProto())
            .setSignatureScheme(signatureScheme)
            .setDigest(ByteString.copyFrom(digest))),
        OperateResponse.ResultCase.SIGN, r -> r.getSign().getSignature().toByteArray(), timeout);
  }

  /** RSAES-PKCS1-v1_5 decryption with implicit rejection (see {@link KeylessClient#decrypt}). */
  public CompletableFuture<byte[]> decryptAsync(KeyRef key, byte[] ciphertext, int plaintextLength, Duration timeout) {
    return submit(OperateRequest.newBuilder().setDecrypt(DecryptRequest.newBuilder()
            .setKey(key.toProto())
            .setCiphertext(ByteString.copyFrom(ciphertext))
            .setPlaintextLength(plaintextLength)),
        OperateResponse.ResultCase.DECRYPT, r -> r.getDecrypt().getPlaintext().toByteArray(), timeout);
  }

  /** GetCredential's answer, unparsed (see {@link KeylessClient#credential} for the parsed form). */
  public CompletableFuture<GetCredentialResponse> credentialAsync(KeyRef key, Duration timeout) {
    return submit(OperateRequest.newBuilder().setGetCredential(GetCredentialRequest.newBuilder().setKey(key.toProto())),
        OperateResponse.ResultCase.GET_CREDENTIAL, OperateResponse::getGetCredential, timeout);
  }

  public CompletableFuture<byte[]> signAsync(KeyRef key, int signatureScheme, byte[] message) {
    return signAsync(key, signatureScheme, message, timeout);
  }

  public CompletableFuture<byte[]> signDigestAsync(KeyRef key, int signatureScheme, byte[] digest) {
    return signDigestAsync(key, signatureScheme, digest, timeout);
  }

  public CompletableFuture<byte[]> decryptAsync(KeyRef key, byte[] ciphertext, int plaintextLength) {
    return decryptAsync(key, ciphertext, plaintextLength, timeout);
  }

  /** Blocking {@link #signAsync}: the signature, or the operation's status as a KeylessException. */
  public byte[] sign(KeyRef key, int signatureScheme, byte[] message) throws KeylessException {
    return await(signAsync(key, signatureScheme, message));
  }

  public byte[] signDigest(KeyRef key, int signatureScheme, byte[] digest) throws KeylessException {
    return await(signDigestAsync(key, signatureScheme, digest));
  }

  public byte[] decrypt(KeyRef key, byte[] ciphertext, int plaintextLength) throws KeylessException {
    return await(decryptAsync(key, ciphertext, plaintextLength));
  }

  byte[] decrypt(KeyRef key, byte[] ciphertext, int plaintextLength, Duration timeout) throws KeylessException {
    return await(decryptAsync(key, ciphertext, plaintextLength, timeout));
  }

  /** The future's value, its KeylessException thrown as such; an interrupt cancels the wait, not the operation. */
  static <T> T await(CompletableFuture<T> future) throws KeylessException {
    try {
      return future.get();
    } catch (ExecutionException e) {
      throw asKeyless(e.getCause());
    } catch (CancellationException e) {
      throw new KeylessException(Status.CANCELLED.withDescription("the operation was cancelled"));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new KeylessException(Status.CANCELLED.withDescription("interrupted while waiting for the service").withCause(e));
    }
  }

  private static KeylessException asKeyless(Throwable t) {
    if (t instanceof CompletionException && t.getCause() != null) {
      t = t.getCause();
    }
    if (t instanceof KeylessException) {
      return (KeylessException) t;
    }
    return new KeylessException(Status.fromThrowable(t));
  }

  // --- the machinery ----------------------------------------------------------------------

  /** One operation: its request (id not yet set), how to read its answer, and its future. */
  private static final class Operation<T> {
    final OperateRequest.Builder request;
    final OperateResponse.ResultCase expected;
    final Function<OperateResponse, T> result;
    final CompletableFuture<T> future = new CompletableFuture<>();
    ScheduledFuture<?> deadline;

    Operation(OperateRequest.Builder request, OperateResponse.ResultCase expected, Function<OperateResponse, T> result) {
      this.request = request;
      this.expected = expected;
      this.result = result;
    }

    void answer(OperateResponse response) {
      if (response.getResultCase() == OperateResponse.ResultCase.ERROR) {
        fail(Status.fromCodeValue(response.getError().getCode()).withDescription(response.getError().getMessage()));
      } else if (response.getResultCase() != expected) {
        fail(Status.INTERNAL.withDescription("the service answered a " + expected + " operation with " + response.getResultCase()));
      } else {
        future.complete(result.apply(response));
      }
    }

    void fail(Status status) {
      future.completeExceptionally(new KeylessException(status));
    }
  }

  /** One Operate call and the operations written to it. */
  private final class Stream implements ClientResponseObserver<OperateRequest, OperateResponse> {
    ClientCallStreamObserver<OperateRequest> requests;
    // Written, not yet answered (timed-out ones too: they still hold a slot at the service).
    final Map<Long, Operation<?>> running = new HashMap<>();
    boolean ended;

    @Override
    public void beforeStart(ClientCallStreamObserver<OperateRequest> requests) {
      this.requests = requests;
      // Runs on gRPC's executor whenever the stream can take more: write what waits here.
      requests.setOnReadyHandler(() -> {
        synchronized (lock) {
          drain();
        }
      });
    }

    @Override
    public void onNext(OperateResponse response) {
      Operation<?> operation;
      synchronized (lock) {
        operation = running.remove(response.getOperationId());
        drain();
      }
      // Null: an id this stream never sent, or answered twice; nothing waits for it.
      if (operation != null) {
        cancelDeadline(operation);
        // A timed-out operation's future is done already, so its late answer goes nowhere.
        operation.answer(response);
      }
    }

    @Override
    public void onError(Throwable t) {
      end(Status.fromThrowable(t));
    }

    @Override
    public void onCompleted() {
      end(Status.UNAVAILABLE.withDescription("the service ended the Operate stream"));
    }

    private void end(Status status) {
      List<Operation<?>> failed = new ArrayList<>();
      synchronized (lock) {
        ended = true;
        failed.addAll(running.values());
        running.clear();
        if (stream == this) {
          stream = null;
          // Waiting for this stream's room: they fail with it, as the caller asked of a
          // broken stream; calls made after this open the next one.
          failed.addAll(queued);
          queued.clear();
        }
      }
      for (Operation<?> operation : failed) {
        cancelDeadline(operation);
        operation.fail(status);
      }
    }
  }

  private <T> CompletableFuture<T> submit(OperateRequest.Builder request, OperateResponse.ResultCase expected,
      Function<OperateResponse, T> result, Duration timeout) {
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive");
    }
    Operation<T> operation = new Operation<>(request, expected, result);
    synchronized (lock) {
      if (closed) {
        operation.fail(Status.CANCELLED.withDescription("the keyless pipeline is closed"));
        return operation.future;
      }
      operation.deadline = timer.schedule(() -> expire(operation), timeout.toNanos(), TimeUnit.NANOSECONDS);
      if (stream == null) {
        stream = new Stream();
        stub.operate(stream);
      }
      queued.add(operation);
      drain();
    }
    return operation.future;
  }

  private void expire(Operation<?> operation) {
    synchronized (lock) {
      // Not yet written: it never reaches the service. Written: it stays in `running` until
      // its answer (dropped) or the stream's end frees its slot.
      queued.remove(operation);
    }
    operation.fail(Status.DEADLINE_EXCEEDED.withDescription("no answer from the service's Operate stream within the deadline"));
  }

  // Writes waiting operations while the stream has room. Called with the lock held.
  private void drain() {
    Stream s = stream;
    if (s == null || s.requests == null || s.ended) {
      return;
    }
    while (!queued.isEmpty() && s.running.size() < maxInFlight && s.requests.isReady()) {
      Operation<?> operation = queued.poll();
      if (operation.future.isDone()) {
        continue;
      }
      long id = nextId++;
      s.running.put(id, operation);
      s.requests.onNext(operation.request.setOperationId(id).build());
      peakRunning = Math.max(peakRunning, s.running.size());
    }
  }

  private static void cancelDeadline(Operation<?> operation) {
    ScheduledFuture<?> deadline = operation.deadline;
    if (deadline != null) {
      deadline.cancel(false);
    }
  }

  /** Operations written to a stream so far. */
  long written() {
    synchronized (lock) {
      return nextId - 1;
    }
  }

  /** The most operations that were on a stream at once. */
  int peakRunning() {
    synchronized (lock) {
      return peakRunning;
    }
  }

  /** How many operations are on the stream, written and not answered. */
  int running() {
    synchronized (lock) {
      return stream == null ? 0 : stream.running.size();
    }
  }

  /** How many operations wait here or run on the stream (for tests and metrics). */
  int pending() {
    synchronized (lock) {
      return queued.size() + (stream == null ? 0 : stream.running.size());
    }
  }

  /**
   * Cancels the stream: operations still waiting fail with CANCELLED, and later calls fail at
   * once. The channel is not closed.
   */
  @Override
  public void close() {
    Stream s;
    List<Operation<?>> failed = new ArrayList<>();
    synchronized (lock) {
      if (closed) {
        return;
      }
      closed = true;
      s = stream;
      stream = null;
      failed.addAll(queued);
      queued.clear();
      if (s != null) {
        s.ended = true;
        failed.addAll(s.running.values());
        s.running.clear();
      }
    }
    Status status = Status.CANCELLED.withDescription("the keyless pipeline is closed");
    for (Operation<?> operation : failed) {
      cancelDeadline(operation);
      operation.fail(status);
    }
    if (s != null && s.requests != null) {
      s.requests.cancel("the keyless pipeline is closed", null);
    }
    timer.shutdownNow();
  }
}
