package dev.handshaker.client;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.HandshakeRequest;
import dev.handshaker.v1.HandshakeResponse;
import dev.handshaker.v1.HandshakeStep;
import dev.handshaker.v1.HandshakerGrpc;
import dev.handshaker.v1.SessionKeys;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Runs one handshake over the service's Handshake stream (one stream per connection): relays the
 * service's out_bytes to the peer and the peer's bytes to the service until the step is COMPLETE
 * or FAILED. Does not touch application data.
 */
final class StreamHandshake {
  /** What a completed handshake hands the record layer. */
  record Outcome(SessionKeys keys, byte[] unconsumed) {}

  private static final Object END_OF_STREAM = new Object();
  // Bytes read from the peer per feed: a whole flight usually fits.
  private static final int READ_CHUNK = 32 * 1024;

  private final Channel channel;
  private final Duration timeout;

  StreamHandshake(Channel channel, Duration timeout) {
    this.channel = channel;
    this.timeout = timeout;
  }

  /**
   * Runs the handshake. For the server role {@code first} carries the server options and this
   * reads the ClientHello before starting; the client role starts with its options alone.
   * Throws {@link HandshakeFailedException} after writing the alert record to the peer.
   */
  Outcome run(HandshakeRequest first, InputStream in, OutputStream out) throws IOException {
    BlockingQueue<Object> responses = new LinkedBlockingQueue<>();
    StreamObserver<HandshakeRequest> requests =
        HandshakerGrpc.newStub(channel)
            .withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS)
            .handshake(
                new StreamObserver<>() {
                  @Override
                  public void onNext(HandshakeResponse response) {
                    responses.add(response);
                  }

                  @Override
                  public void onError(Throwable error) {
                    responses.add(error);
                  }

                  @Override
                  public void onCompleted() {
                    responses.add(END_OF_STREAM);
                  }
                });
    boolean finished = false;
    try {
      byte[] fed = new byte[0];
      HandshakeRequest request = first;
      if (first.hasServer()) {
        // The client speaks first: start the server with its ClientHello.
        fed = readSome(in);
        request = first.toBuilder().setInBytes(ByteString.copyFrom(fed)).build();
      }
      requests.onNext(request);
      while (true) {
        HandshakeResponse response = next(responses);
        HandshakeStep step = response.getStep();
        if (!step.getOutBytes().isEmpty()) {
          step.getOutBytes().writeTo(out);
          out.flush();
        }
        switch (step.getState()) {
          case HANDSHAKE_STATE_NEED_INPUT:
            fed = readSome(in);
            requests.onNext(HandshakeRequest.newBuilder().setInBytes(ByteString.copyFrom(fed)).build());
            break;
          case HANDSHAKE_STATE_COMPLETE:
            if (!response.hasKeys()) {
              throw new HandshakerServiceException("a COMPLETE step came without keys");
            }
            long consumed = step.getBytesConsumed();
            if (consumed > fed.length) {
              throw new HandshakerServiceException("bytes_consumed exceeds the bytes fed");
            }
            finished = true;
            requests.onCompleted();
            return new Outcome(response.getKeys(), Arrays.copyOfRange(fed, (int) consumed, fed.length));
          case HANDSHAKE_STATE_FAILED:
            finished = true;
            requests.onCompleted();
            throw new HandshakeFailedException(
                step.getFailure().getAlert(),
                step.getFailure().getReason(),
                step.getFailure().getSentByPeer());
          default:
            throw new HandshakerServiceException("a step with state " + step.getState());
        }
      }
    } catch (StatusRuntimeException error) {
      // onNext after the call ended: the cause is already queued.
      throw new HandshakerServiceException(error.getStatus());
    } finally {
      if (!finished) {
        requests.onError(Status.CANCELLED.withDescription("handshake abandoned").asRuntimeException());
      }
    }
  }

  private static byte[] readSome(InputStream in) throws IOException {
    byte[] buffer = new byte[READ_CHUNK];
    int n = in.read(buffer);
    if (n < 0) {
      throw new javax.net.ssl.SSLHandshakeException("the peer closed the connection during the handshake");
    }
    return Arrays.copyOf(buffer, n);
  }

  private HandshakeResponse next(BlockingQueue<Object> responses) throws IOException {
    Object item;
    try {
      // The call's deadline ends it first; this bound only guards against a lost callback.
      item = responses.poll(timeout.toMillis() + 5_000, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting for the handshaker service");
    }
    if (item == null) {
      throw new HandshakerServiceException(Status.DEADLINE_EXCEEDED.withDescription("no answer"));
    }
    if (item instanceof HandshakeResponse response) {
      return response;
    }
    if (item instanceof Throwable error) {
      throw new HandshakerServiceException(Status.fromThrowable(error));
    }
    throw new HandshakerServiceException("the stream ended before the handshake did");
  }
}
