package dev.handshaker.client;

import io.grpc.Channel;
import java.time.Duration;
import java.util.Objects;

/**
 * Where the service is, how long a handshake may take and which RPC runs it: the settings both
 * roles share, kept in one place so that client and server configs default, check and resolve
 * them the same way. Immutable, so a builder can keep changing its copy after it has built a
 * config.
 *
 * @param channel the caller's own channel, or null to use the shared one for {@code address}
 * @param multiplex run handshakes on the channel's shared Multiplex streams instead of a
 *     Handshake stream each
 */
record ServiceSettings(Channel channel, String address, Duration handshakeTimeout, boolean multiplex) {
  static ServiceSettings defaults() {
    return new ServiceSettings(null, ServiceChannels.defaultAddress(), Duration.ofSeconds(30), false);
  }

  ServiceSettings withAddress(String address) {
    return new ServiceSettings(channel, Objects.requireNonNull(address), handshakeTimeout, multiplex);
  }

  ServiceSettings withChannel(Channel channel) {
    return new ServiceSettings(Objects.requireNonNull(channel), address, handshakeTimeout, multiplex);
  }

  ServiceSettings withHandshakeTimeout(Duration timeout) {
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("handshake timeout must be positive");
    }
    return new ServiceSettings(channel, address, timeout, multiplex);
  }

  ServiceSettings withMultiplex(boolean multiplex) {
    return new ServiceSettings(channel, address, handshakeTimeout, multiplex);
  }

  /** The channel to run handshakes on: the caller's if set, else the shared plaintext one. */
  Channel resolveChannel() {
    return channel != null ? channel : ServiceChannels.forAddress(address);
  }

  /**
   * The service side of one new handshake: a Handshake stream of its own, or a connection on the
   * channel's Multiplex streams. The handshake timeout starts now.
   */
  HandshakeExchange openExchange() {
    Channel resolved = resolveChannel();
    return multiplex
        ? Multiplexer.forChannel(resolved).connect(handshakeTimeout)
        : new HandshakeStream(resolved, handshakeTimeout);
  }
}
