package dev.handshaker.client;

import dev.handshaker.v1.HandshakeRequest;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketOption;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.Set;

/**
 * A TLS 1.3 socket whose handshake runs in the handshaker service and whose records are sealed
 * and opened here with the keys the service hands back. {@link #getInputStream()} and {@link
 * #getOutputStream()} carry plaintext.
 *
 * <p>A client socket from {@link #connect(String, int, ClientConfig)} has finished its handshake
 * when it is returned. A socket from {@link HandshakerServerSocket#accept()}, like JSSE's,
 * handshakes on its first read or write, or on {@link #startHandshake()}, so that the accepting
 * thread never waits on a slow client.
 */
public class HandshakerSocket extends Socket {
  private static final int LINGER_MILLIS = 500;

  private final Socket transport;
  private final boolean ownsTransport;
  private final ClientConfig clientConfig;
  private final ServerConfig serverConfig;
  private volatile String host;

  private final Object handshakeLock = new Object();
  private volatile RecordConnection connection;
  private volatile SessionInfo session;
  private IOException handshakeFailure;
  private volatile boolean closed;

  private final InputStream plaintextIn = new PlaintextInputStream();
  private final OutputStream plaintextOut = new PlaintextOutputStream();

  private HandshakerSocket(
      Socket transport,
      boolean ownsTransport,
      String host,
      ClientConfig clientConfig,
      ServerConfig serverConfig) {
    this.transport = transport;
    this.ownsTransport = ownsTransport;
    this.host = host;
    this.clientConfig = clientConfig;
    this.serverConfig = serverConfig;
  }

  /** An unconnected client socket: {@link #connect(SocketAddress, int)} connects and handshakes. */
  public HandshakerSocket(ClientConfig config) {
    this(new Socket(), true, null, config, null);
  }

  /**
   * Connects to {@code host:port} and runs the client handshake; {@code host} is the server name
   * unless the config sets one.
   */
  public static HandshakerSocket connect(String host, int port, ClientConfig config)
      throws IOException {
    HandshakerSocket socket = new HandshakerSocket(config);
    try {
      socket.connect(new InetSocketAddress(host, port), 0);
    } catch (IOException | RuntimeException e) {
      socket.close();
      throw e;
    }
    return socket;
  }

  /**
   * A client over an already connected socket; the handshake runs on {@link #startHandshake()}
   * or the first read or write. {@code autoClose}: closing this socket closes {@code connected}.
   */
  public static HandshakerSocket overClient(
      Socket connected, String host, ClientConfig config, boolean autoClose) {
    return new HandshakerSocket(connected, autoClose, host, config, null);
  }

  /**
   * A server over an accepted socket; the handshake runs on {@link #startHandshake()} or the
   * first read or write.
   */
  public static HandshakerSocket overServer(Socket accepted, ServerConfig config) {
    return new HandshakerSocket(accepted, true, null, null, config);
  }

  // ------------------------------------------------------------------ handshake

  /**
   * Runs the handshake now if it has not run. Throws {@link HandshakeFailedException} (with the
   * alert, after sending it to the peer) when it fails, and {@link HandshakerServiceException}
   * when the service refuses; either way the socket is closed.
   */
  public void startHandshake() throws IOException {
    handshake();
  }

  /** What the handshake negotiated; runs it first if need be. */
  public SessionInfo session() throws IOException {
    handshake();
    return session;
  }

  /** The negotiated ALPN protocol, "" when none was, or null before the handshake. */
  public String getApplicationProtocol() {
    SessionInfo current = session;
    return current == null ? null : current.applicationProtocol();
  }

  /** True in the client role. */
  public boolean isClientMode() {
    return clientConfig != null;
  }

  /**
   * Sends a KeyUpdate (RFC 8446 section 4.6.3) and moves to the next write keys; with {@code
   * requestPeerUpdate} the peer answers with a KeyUpdate of its own.
   */
  public void updateKeys(boolean requestPeerUpdate) throws IOException {
    established().updateKeys(requestPeerUpdate);
  }

  /** How many KeyUpdates this connection has received and sent, in that order. */
  int[] keyUpdateCounts() {
    RecordConnection current = connection;
    return current == null
        ? new int[2]
        : new int[] {current.keyUpdatesReceived(), current.keyUpdatesSent()};
  }

  private RecordConnection established() throws IOException {
    handshake();
    return connection;
  }

  private void handshake() throws IOException {
    if (connection != null) {
      return;
    }
    synchronized (handshakeLock) {
      if (connection != null) {
        return;
      }
      if (handshakeFailure != null) {
        throw new SocketException("the handshake failed earlier: " + handshakeFailure.getMessage());
      }
      if (closed) {
        throw new SocketException("socket closed");
      }
      if (!transport.isConnected()) {
        throw new SocketException("socket is not connected");
      }
      try {
        runHandshake();
      } catch (HandshakeFailedException e) {
        handshakeFailure = e;
        if (e.sentByPeer()) {
          closeQuietly();
        } else {
          closeAfterAlert();
        }
        throw e;
      } catch (IOException | RuntimeException e) {
        handshakeFailure = e instanceof IOException io ? io : new IOException(e);
        closeQuietly();
        throw e;
      }
    }
  }

  private void runHandshake() throws IOException {
    HandshakeRequest first;
    ServiceSettings service;
    if (clientConfig != null) {
      first = HandshakeRequest.newBuilder().setClient(clientConfig.toOptions(host)).build();
      service = clientConfig.service();
    } else {
      first = HandshakeRequest.newBuilder().setServer(serverConfig.toOptions()).build();
      service = serverConfig.service();
    }
    Duration timeout = service.handshakeTimeout();
    int soTimeout = transport.getSoTimeout();
    if (soTimeout == 0) {
      // A peer that goes quiet mid-handshake must not hold this thread past the timeout.
      transport.setSoTimeout((int) Math.min(Integer.MAX_VALUE, timeout.toMillis()));
    }
    InputStream in = transport.getInputStream();
    OutputStream out = transport.getOutputStream();
    HandshakeRelay.Outcome outcome;
    try {
      outcome = HandshakeRelay.run(service.openExchange(), first, in, out);
    } finally {
      if (soTimeout == 0 && !transport.isClosed()) {
        transport.setSoTimeout(0);
      }
    }
    session = new SessionInfo(outcome.keys());
    connection =
        new RecordConnection(
            outcome.keys(), outcome.unconsumed(), in, out, this::closeQuietly, this::closeAfterAlert);
  }

  // ------------------------------------------------------------------ streams

  @Override
  public InputStream getInputStream() throws IOException {
    checkOpen();
    return plaintextIn;
  }

  @Override
  public OutputStream getOutputStream() throws IOException {
    checkOpen();
    return plaintextOut;
  }

  private void checkOpen() throws SocketException {
    if (isClosed()) {
      throw new SocketException("socket closed");
    }
    if (!transport.isConnected()) {
      throw new SocketException("socket is not connected");
    }
  }

  private final class PlaintextInputStream extends InputStream {
    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      int n = read(one, 0, 1);
      return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      return established().read(b, off, len);
    }

    @Override
    public int available() {
      RecordConnection current = connection;
      return current == null ? 0 : current.available();
    }

    @Override
    public void close() throws IOException {
      HandshakerSocket.this.close();
    }
  }

  private final class PlaintextOutputStream extends OutputStream {
    @Override
    public void write(int b) throws IOException {
      write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
      established().write(b, off, len);
    }

    @Override
    public void close() throws IOException {
      HandshakerSocket.this.close();
    }
  }

  // ------------------------------------------------------------------ lifecycle

  @Override
  public void connect(SocketAddress endpoint) throws IOException {
    connect(endpoint, 0);
  }

  /** Connects the transport and, in the client role, runs the handshake before returning. */
  @Override
  public void connect(SocketAddress endpoint, int timeout) throws IOException {
    if (clientConfig == null) {
      throw new SocketException("a server-role socket is not connected by the caller");
    }
    if (host == null && endpoint instanceof InetSocketAddress address) {
      host = address.getHostString();
    }
    transport.connect(endpoint, timeout);
    handshake();
  }

  /**
   * Sends close_notify and closes the connection. A fatal alert from either side has already
   * closed it.
   */
  @Override
  public void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    RecordConnection current = connection;
    try {
      if (current != null && transport.isConnected() && !transport.isClosed()) {
        current.closeOutbound();
      }
    } catch (IOException e) {
      // The peer may already be gone; close the transport regardless.
    } finally {
      if (ownsTransport) {
        transport.close();
      }
    }
  }

  private void closeQuietly() {
    closed = true;
    try {
      if (ownsTransport) {
        transport.close();
      }
    } catch (IOException e) {
      // Closing after a failure: nothing more to report.
    }
  }

  /**
   * Closes after this side sent a fatal alert. Closing a TCP socket with unread bytes in its
   * receive buffer sends a reset, and a reset can destroy the alert before the peer reads it; so
   * the write side is shut first and what the peer still sends is drained for a moment.
   */
  private void closeAfterAlert() {
    closed = true;
    if (!ownsTransport) {
      return;
    }
    try {
      transport.shutdownOutput();
      transport.setSoTimeout(LINGER_MILLIS);
      InputStream in = transport.getInputStream();
      byte[] sink = new byte[16 * 1024];
      long deadline = System.nanoTime() + LINGER_MILLIS * 1_000_000L;
      while (System.nanoTime() < deadline && in.read(sink) >= 0) {
        // Discarded: the connection has failed.
      }
    } catch (IOException e) {
      // The peer closed or went quiet: either way, time to close.
    } finally {
      closeQuietly();
    }
  }

  /** Sends close_notify and half-closes the transport; the peer's data can still be read. */
  @Override
  public void shutdownOutput() throws IOException {
    RecordConnection current = connection;
    if (current != null) {
      current.closeOutbound();
    }
    transport.shutdownOutput();
  }

  @Override
  public void shutdownInput() throws IOException {
    transport.shutdownInput();
  }

  @Override
  public boolean isClosed() {
    return closed || transport.isClosed();
  }

  @Override
  public boolean isConnected() {
    return transport.isConnected();
  }

  @Override
  public boolean isBound() {
    return transport.isBound();
  }

  @Override
  public boolean isInputShutdown() {
    return transport.isInputShutdown();
  }

  @Override
  public boolean isOutputShutdown() {
    return transport.isOutputShutdown();
  }

  // ------------------------------------------------------------------ delegated to the transport

  @Override
  public void bind(SocketAddress bindpoint) throws IOException {
    transport.bind(bindpoint);
  }

  @Override
  public InetAddress getInetAddress() {
    return transport.getInetAddress();
  }

  @Override
  public InetAddress getLocalAddress() {
    return transport.getLocalAddress();
  }

  @Override
  public int getPort() {
    return transport.getPort();
  }

  @Override
  public int getLocalPort() {
    return transport.getLocalPort();
  }

  @Override
  public SocketAddress getRemoteSocketAddress() {
    return transport.getRemoteSocketAddress();
  }

  @Override
  public SocketAddress getLocalSocketAddress() {
    return transport.getLocalSocketAddress();
  }

  /** None: records are read and written through the streams only. */
  @Override
  public SocketChannel getChannel() {
    return null;
  }

  @Override
  public void setTcpNoDelay(boolean on) throws SocketException {
    transport.setTcpNoDelay(on);
  }

  @Override
  public boolean getTcpNoDelay() throws SocketException {
    return transport.getTcpNoDelay();
  }

  @Override
  public void setSoLinger(boolean on, int linger) throws SocketException {
    transport.setSoLinger(on, linger);
  }

  @Override
  public int getSoLinger() throws SocketException {
    return transport.getSoLinger();
  }

  @Override
  public void sendUrgentData(int data) throws IOException {
    throw new SocketException("urgent data is not supported over TLS");
  }

  @Override
  public void setOOBInline(boolean on) throws SocketException {
    throw new SocketException("out-of-band data is not supported over TLS");
  }

  @Override
  public boolean getOOBInline() throws SocketException {
    return false;
  }

  @Override
  public void setSoTimeout(int timeout) throws SocketException {
    transport.setSoTimeout(timeout);
  }

  @Override
  public int getSoTimeout() throws SocketException {
    return transport.getSoTimeout();
  }

  @Override
  public void setSendBufferSize(int size) throws SocketException {
    transport.setSendBufferSize(size);
  }

  @Override
  public int getSendBufferSize() throws SocketException {
    return transport.getSendBufferSize();
  }

  @Override
  public void setReceiveBufferSize(int size) throws SocketException {
    transport.setReceiveBufferSize(size);
  }

  @Override
  public int getReceiveBufferSize() throws SocketException {
    return transport.getReceiveBufferSize();
  }

  @Override
  public void setKeepAlive(boolean on) throws SocketException {
    transport.setKeepAlive(on);
  }

  @Override
  public boolean getKeepAlive() throws SocketException {
    return transport.getKeepAlive();
  }

  @Override
  public void setTrafficClass(int tc) throws SocketException {
    transport.setTrafficClass(tc);
  }

  @Override
  public int getTrafficClass() throws SocketException {
    return transport.getTrafficClass();
  }

  @Override
  public void setReuseAddress(boolean on) throws SocketException {
    transport.setReuseAddress(on);
  }

  @Override
  public boolean getReuseAddress() throws SocketException {
    return transport.getReuseAddress();
  }

  @Override
  public void setPerformancePreferences(int connectionTime, int latency, int bandwidth) {
    transport.setPerformancePreferences(connectionTime, latency, bandwidth);
  }

  @Override
  public <T> Socket setOption(SocketOption<T> name, T value) throws IOException {
    transport.setOption(name, value);
    return this;
  }

  @Override
  public <T> T getOption(SocketOption<T> name) throws IOException {
    return transport.getOption(name);
  }

  @Override
  public Set<SocketOption<?>> supportedOptions() {
    return transport.supportedOptions();
  }

  @Override
  public String toString() {
    SessionInfo current = session;
    return "HandshakerSocket["
        + (isClientMode() ? "client" : "server")
        + ", "
        + transport
        + (current == null ? "" : ", " + current.protocol() + ", " + current.cipherSuite())
        + "]";
  }
}
