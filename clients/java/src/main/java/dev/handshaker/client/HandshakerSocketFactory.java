package dev.handshaker.client;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.Objects;
import javax.net.SocketFactory;

/**
 * A {@link SocketFactory} for libraries that take one (HTTP clients, database drivers): every
 * socket it makes is a client {@link HandshakerSocket} with this factory's config.
 */
public class HandshakerSocketFactory extends SocketFactory {
  private final ClientConfig config;

  public HandshakerSocketFactory(ClientConfig config) {
    this.config = Objects.requireNonNull(config);
  }

  /** An unconnected socket: connect() connects and runs the handshake. */
  @Override
  public Socket createSocket() {
    return new HandshakerSocket(config);
  }

  @Override
  public Socket createSocket(String host, int port) throws IOException {
    return HandshakerSocket.connect(host, port, config);
  }

  @Override
  public Socket createSocket(String host, int port, InetAddress localHost, int localPort)
      throws IOException {
    HandshakerSocket socket = new HandshakerSocket(config);
    try {
      socket.bind(new InetSocketAddress(localHost, localPort));
      socket.connect(new InetSocketAddress(host, port), 0);
    } catch (IOException | RuntimeException e) {
      socket.close();
      throw e;
    }
    return socket;
  }

  @Override
  public Socket createSocket(InetAddress host, int port) throws IOException {
    HandshakerSocket socket = new HandshakerSocket(config);
    socket.connect(new InetSocketAddress(host, port), 0);
    return socket;
  }

  @Override
  public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
      throws IOException {
    HandshakerSocket socket = new HandshakerSocket(config);
    try {
      socket.bind(new InetSocketAddress(localAddress, localPort));
      socket.connect(new InetSocketAddress(address, port), 0);
    } catch (IOException | RuntimeException e) {
      socket.close();
      throw e;
    }
    return socket;
  }

  /** Layers TLS over a connected socket, as SSLSocketFactory does, and runs the handshake. */
  public Socket createSocket(Socket connected, String host, int port, boolean autoClose)
      throws IOException {
    HandshakerSocket socket = HandshakerSocket.overClient(connected, host, config, autoClose);
    socket.startHandshake();
    return socket;
  }
}
