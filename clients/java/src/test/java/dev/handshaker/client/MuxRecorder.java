package dev.handshaker.client;

import dev.handshaker.v1.ConnectionFrame;
import dev.handshaker.v1.ConnectionResult;
import dev.handshaker.v1.HandshakeState;
import dev.handshaker.v1.HandshakerGrpc;
import dev.handshaker.v1.MultiplexRequest;
import dev.handshaker.v1.MultiplexResponse;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Watches what a channel sends to the service: the streams it opens, by method, and the frames
 * and results on its Multiplex streams.
 */
final class MuxRecorder implements ClientInterceptor {
  static final String HANDSHAKE = HandshakerGrpc.getHandshakeMethod().getFullMethodName();
  static final String MULTIPLEX = HandshakerGrpc.getMultiplexMethod().getFullMethodName();

  private final Map<String, Integer> opened = new HashMap<>();
  private int requests; // MultiplexRequests sent
  private int frames; // frames in them
  private int maxBatch; // most frames in one request
  private final List<Long> starts = new ArrayList<>(); // ids of start frames, in order
  private final Set<Long> aborts = new HashSet<>();
  private final Set<Long> acked = new HashSet<>(); // abort results: an id with no response or error
  private final Map<Long, Integer> errors = new HashMap<>(); // FrameError codes by id
  private final Set<Long> finals = new HashSet<>(); // COMPLETE, FAILED or an error
  private final List<String> closed = new ArrayList<>(); // how each Multiplex stream ended
  private final Set<Long> answered = new HashSet<>(); // ids with any result

  /** A plaintext channel to {@code address} that this recorder watches. */
  static ManagedChannel channel(String address, MuxRecorder recorder) {
    return ManagedChannelBuilder.forTarget(address).usePlaintext().intercept(recorder).build();
  }

  synchronized int streams(String method) {
    return opened.getOrDefault(method, 0);
  }

  synchronized int requests() {
    return requests;
  }

  synchronized int frames() {
    return frames;
  }

  synchronized int maxBatch() {
    return maxBatch;
  }

  synchronized List<Long> starts() {
    return List.copyOf(starts);
  }

  synchronized long lastStart() {
    return starts.isEmpty() ? 0 : starts.get(starts.size() - 1);
  }

  synchronized boolean aborted(long id) {
    return aborts.contains(id);
  }

  synchronized int abortCount() {
    return aborts.size();
  }

  synchronized boolean abortAcknowledged(long id) {
    return acked.contains(id);
  }

  /** Whether connection {@code id} has had any result (a response, an error or an abort's). */
  synchronized boolean answered(long id) {
    return answered.contains(id);
  }

  synchronized boolean ended(long id) {
    return finals.contains(id);
  }

  synchronized int endedCount() {
    return finals.size();
  }

  /** How the Multiplex streams that ended did (their gRPC status), for failure messages. */
  synchronized List<String> closedStreams() {
    return List.copyOf(closed);
  }

  /** The FrameError code of connection {@code id}'s result, or null when it had none. */
  synchronized Integer errorCode(long id) {
    return errors.get(id);
  }

  /** Polls {@code condition} on this recorder for up to {@code millis}. */
  boolean eventually(long millis, Predicate<MuxRecorder> condition) throws InterruptedException {
    long deadline = System.nanoTime() + millis * 1_000_000L;
    while (System.nanoTime() < deadline) {
      if (condition.test(this)) {
        return true;
      }
      Thread.sleep(20);
    }
    return condition.test(this);
  }

  private synchronized void sent(MultiplexRequest request) {
    requests++;
    frames += request.getFramesCount();
    maxBatch = Math.max(maxBatch, request.getFramesCount());
    for (ConnectionFrame frame : request.getFramesList()) {
      if (frame.getAbort()) {
        aborts.add(frame.getConnectionId());
      } else if (frame.getRequest().getStartCase() != dev.handshaker.v1.HandshakeRequest.StartCase.START_NOT_SET) {
        starts.add(frame.getConnectionId());
      }
    }
  }

  private synchronized void received(MultiplexResponse response) {
    for (ConnectionResult result : response.getResultsList()) {
      long id = result.getConnectionId();
      answered.add(id);
      if (result.hasError()) {
        errors.put(id, result.getError().getCode());
        finals.add(id);
      } else if (!result.hasResponse()) {
        acked.add(id);
      } else if (result.getResponse().getStep().getState() != HandshakeState.HANDSHAKE_STATE_NEED_INPUT) {
        finals.add(id);
      }
    }
  }

  @Override
  public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
      MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
    synchronized (this) {
      opened.merge(method.getFullMethodName(), 1, Integer::sum);
    }
    return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
      @Override
      public void start(Listener<RespT> listener, Metadata headers) {
        super.start(
            new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
              @Override
              public void onMessage(RespT message) {
                // Recorded before the multiplexer sees it: a handshake that has its answer finds
                // the answer recorded.
                if (message instanceof MultiplexResponse response) {
                  received(response);
                }
                super.onMessage(message);
              }

              @Override
              public void onClose(io.grpc.Status status, Metadata trailers) {
                if (method.getFullMethodName().equals(MULTIPLEX)) {
                  synchronized (MuxRecorder.this) {
                    closed.add(status.getCode() + " " + status.getDescription());
                  }
                }
                super.onClose(status, trailers);
              }
            },
            headers);
      }

      @Override
      public void sendMessage(ReqT message) {
        if (message instanceof MultiplexRequest request) {
          sent(request);
        }
        super.sendMessage(message);
      }
    };
  }
}
