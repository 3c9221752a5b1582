package dev.handshaker.client;

import dev.handshaker.v1.HandshakeRequest;
import dev.handshaker.v1.HandshakeResponse;
import dev.handshaker.v1.HandshakeState;
import dev.handshaker.v1.HandshakerGrpc;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One handshake on a Handshake stream of its own: the stream is the connection, its deadline the
 * handshake timeout. Ending the stream frees the handshake in the service.
 */
final class HandshakeStream implements HandshakeExchange {
  private static final Object END_OF_STREAM = new Object();

  private final Duration timeout;
  private final BlockingQueue<Object> responses = new LinkedBlockingQueue<>();
  private final StreamObserver<HandshakeRequest> requests;
  // The service answered COMPLETE or FAILED: the stream ends with a half-close, not a cancel.
  private boolean finished;

  /** Opens the stream; its deadline, the handshake timeout, starts now. */
  HandshakeStream(Channel channel, Duration timeout) {
    this.timeout = timeout;
    this.requests =
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
  }

  @Override
  public HandshakeResponse exchange(HandshakeRequest request) throws IOException {
    try {
      requests.onNext(request);
    } catch (StatusRuntimeException error) {
      // onNext after the call ended: the cause is already queued.
      throw new HandshakerServiceException(error.getStatus());
    }
    HandshakeResponse response = next();
    HandshakeState state = response.getStep().getState();
    if (state == HandshakeState.HANDSHAKE_STATE_COMPLETE
        || state == HandshakeState.HANDSHAKE_STATE_FAILED) {
      finished = true;
    }
    return response;
  }

  @Override
  public void close() {
    if (finished) {
      requests.onCompleted();
    } else {
      requests.onError(Status.CANCELLED.withDescription("handshake abandoned").asRuntimeException());
    }
  }

  private HandshakeResponse next() throws IOException {
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
