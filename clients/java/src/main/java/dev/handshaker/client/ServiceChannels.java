package dev.handshaker.client;

import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * One shared gRPC channel per service address, so that connections reuse one HTTP/2 connection
 * to the service. Plaintext: for a service that listens on loopback or a Unix socket; a caller
 * that reaches the service over TLS passes its own {@link Channel} in the config.
 */
final class ServiceChannels {
  static final String ENV_ADDRESS = "HANDSHAKER_ADDR";
  static final String DEFAULT_ADDRESS = "127.0.0.1:50051";

  private static final ConcurrentMap<String, ManagedChannel> CHANNELS = new ConcurrentHashMap<>();

  private ServiceChannels() {}

  static String defaultAddress() {
    String fromEnv = System.getenv(ENV_ADDRESS);
    return fromEnv == null || fromEnv.isBlank() ? DEFAULT_ADDRESS : fromEnv.trim();
  }

  static Channel forAddress(String address) {
    return CHANNELS.computeIfAbsent(
        address, target -> ManagedChannelBuilder.forTarget(target).usePlaintext().build());
  }
}
