package dev.handshaker.client;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketOption;
import java.nio.channels.ServerSocketChannel;
import java.util.Objects;
import java.util.Set;

/**
 * A server socket whose accepted connections are TLS 1.3 servers: it wraps a plain {@link
 * ServerSocket}, and each accepted {@link HandshakerSocket} runs its handshake in the service with
 * the credential the {@link ServerConfig} names. Like JSSE's SSLServerSocket, the handshake runs
 * on the accepted socket's first read or write (or {@link HandshakerSocket#startHandshake()}), in
 * the thread that serves it, so one slow or failing client never stalls {@link #accept()}.
 */
public class HandshakerServerSocket extends ServerSocket {
  private final ServerSocket inner;
  private final ServerConfig config;

  /** Wraps {@code inner}, bound or not; closing this closes it. */
  public HandshakerServerSocket(ServerSocket inner, ServerConfig config) throws IOException {
    super();
    this.inner = Objects.requireNonNull(inner);
    this.config = Objects.requireNonNull(config);
  }

  /** A server socket bound to {@code address} (port 0 picks a free port). */
  public static HandshakerServerSocket bind(SocketAddress address, ServerConfig config)
      throws IOException {
    ServerSocket inner = new ServerSocket();
    try {
      inner.bind(address);
      return new HandshakerServerSocket(inner, config);
    } catch (IOException | RuntimeException e) {
      inner.close();
      throw e;
    }
  }

  public ServerConfig config() {
    return config;
  }

  /** Accepts a connection; the returned socket handshakes on first use. */
  @Override
  public HandshakerSocket accept() throws IOException {
    Socket accepted = inner.accept();
    return HandshakerSocket.overServer(accepted, config);
  }

  @Override
  public void bind(SocketAddress endpoint) throws IOException {
    inner.bind(endpoint);
  }

  @Override
  public void bind(SocketAddress endpoint, int backlog) throws IOException {
    inner.bind(endpoint, backlog);
  }

  @Override
  public void close() throws IOException {
    inner.close();
  }

  @Override
  public boolean isBound() {
    return inner.isBound();
  }

  @Override
  public boolean isClosed() {
    return inner.isClosed();
  }

  @Override
  public InetAddress getInetAddress() {
    return inner.getInetAddress();
  }

  @Override
  public int getLocalPort() {
    return inner.getLocalPort();
  }

  @Override
  public SocketAddress getLocalSocketAddress() {
    return inner.getLocalSocketAddress();
  }

  /** None: accept through {@link #accept()} only. */
  @Override
  public ServerSocketChannel getChannel() {
    return null;
  }

  @Override
  public void setSoTimeout(int timeout) throws SocketException {
    inner.setSoTimeout(timeout);
  }

  @Override
  public int getSoTimeout() throws IOException {
    return inner.getSoTimeout();
  }

  @Override
  public void setReuseAddress(boolean on) throws SocketException {
    inner.setReuseAddress(on);
  }

  @Override
  public boolean getReuseAddress() throws SocketException {
    return inner.getReuseAddress();
  }

  @Override
  public void setReceiveBufferSize(int size) throws SocketException {
    inner.setReceiveBufferSize(size);
  }

  @Override
  public int getReceiveBufferSize() throws SocketException {
    return inner.getReceiveBufferSize();
  }

  @Override
  public void setPerformancePreferences(int connectionTime, int latency, int bandwidth) {
    inner.setPerformancePreferences(connectionTime, latency, bandwidth);
  }

  @Override
  public <T> ServerSocket setOption(SocketOption<T> name, T value) throws IOException {
    inner.setOption(name, value);
    return this;
  }

  @Override
  public <T> T getOption(SocketOption<T> name) throws IOException {
    return inner.getOption(name);
  }

  @Override
  public Set<SocketOption<?>> supportedOptions() {
    return inner.supportedOptions();
  }

  @Override
  public String toString() {
    return "HandshakerServerSocket[" + inner + "]";
  }
}
