package dev.handshaker.client;

import io.grpc.Channel;
import java.time.Duration;
import java.util.Objects;

/**
 * Where the service is and how long a handshake may take: the settings both roles share, kept in
 * one place so that client and server configs default, check and resolve them the same way.
 * Immutable, so a builder can keep changing its copy after it has built a config.
 *
 * @param channel the caller's own channel, or null to use the shared one for {@code address}
 */
record ServiceSettings(Channel channel, String address, Duration handshakeTimeout) {
  static ServiceSettings defaults() {
    return new ServiceSettings(null, ServiceChannels.defaultAddress(), Duration.ofSeconds(30));
  }

  ServiceSettings withAddress(String address) {
    return new ServiceSettings(channel, Objects.requireNonNull(address), handshakeTimeout);
  }

  ServiceSettings withChannel(Channel channel) {
    return new ServiceSettings(Objects.requireNonNull(channel), address, handshakeTimeout);
  }

  ServiceSettings withHandshakeTimeout(Duration timeout) {
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("handshake timeout must be positive");
    }
    return new ServiceSettings(channel, address, timeout);
  }

  /** The channel to run handshakes on: the caller's if set, else the shared plaintext one. */
  Channel resolveChannel() {
    return channel != null ? channel : ServiceChannels.forAddress(address);
  }
}
