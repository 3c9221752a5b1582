package dev.handshaker.client.keyless;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;

/**
 * A blocking driver for an SSLEngine over a plain Socket's streams, the loop Netty's SslHandler,
 * Jetty and gRPC run on their event loops: wrap what the engine has to send, unwrap what the
 * peer sent, run delegated tasks on the calling thread (JSSE does the keyless signature in one),
 * and grow the buffers on BUFFER_OVERFLOW / BUFFER_UNDERFLOW. Tests only; one thread per
 * connection.
 */
final class EngineConnection implements AutoCloseable {
  private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);

  private final SSLEngine engine;
  private final Socket socket;
  private final InputStream in;
  private final OutputStream out;
  // Records from the peer, not yet unwrapped (write mode: position = bytes held).
  private ByteBuffer netIn;
  // Records to the peer (filled by wrap, then written out whole).
  private ByteBuffer netOut;
  // Decrypted application data not yet read (write mode).
  private ByteBuffer appIn;
  private boolean inboundDone;
  // While handshake() runs, its own loop answers the engine's statuses.
  private boolean handshaking;

  EngineConnection(SSLEngine engine, Socket socket) throws IOException {
    this.engine = engine;
    this.socket = socket;
    this.in = socket.getInputStream();
    this.out = socket.getOutputStream();
    // Deliberately small to start with: a handshake flight does not fit, so the overflow and
    // underflow paths run on every connection rather than only with large certificates.
    netIn = ByteBuffer.allocate(512);
    netOut = ByteBuffer.allocate(512);
    appIn = ByteBuffer.allocate(64);
  }

  SSLEngine engine() {
    return engine;
  }

  /** Runs the handshake to its end; a failure is the engine's SSLException, after its alert was sent. */
  void handshake() throws IOException {
    handshaking = true;
    try {
      engine.beginHandshake();
      HandshakeStatus status = engine.getHandshakeStatus();
      while (status != HandshakeStatus.FINISHED && status != HandshakeStatus.NOT_HANDSHAKING) {
        switch (status) {
          case NEED_TASK:
            runTasks();
            break;
          case NEED_WRAP:
            wrap(EMPTY);
            break;
          case NEED_UNWRAP:
          case NEED_UNWRAP_AGAIN:
            if (unwrap() == null) {
              throw new EOFException("the peer closed the connection during the handshake");
            }
            break;
          default:
            throw new IllegalStateException("handshake status " + status);
        }
        status = engine.getHandshakeStatus();
      }
    } catch (SSLException e) {
      sendAlert();
      throw e;
    } finally {
      handshaking = false;
    }
  }

  // JSSE, having failed, has an alert to wrap; the peer should see it rather than a bare close.
  private void sendAlert() {
    try {
      engine.closeOutbound();
      for (int i = 0; i < 4 && engine.getHandshakeStatus() == HandshakeStatus.NEED_WRAP; i++) {
        wrap(EMPTY);
      }
    } catch (IOException | RuntimeException ignored) {
      // The handshake's own failure is the one to report.
    }
  }

  /** Encrypts and sends all of {@code data}. */
  void write(byte[] data) throws IOException {
    ByteBuffer src = ByteBuffer.wrap(data);
    while (src.hasRemaining()) {
      if (wrap(src).getStatus() == SSLEngineResult.Status.CLOSED) {
        throw new EOFException("the engine is closed");
      }
    }
  }

  /** The next line of application data without its line ending, or null at the peer's close. */
  String readLine() throws IOException {
    while (true) {
      appIn.flip();
      for (int i = appIn.position(); i < appIn.limit(); i++) {
        if (appIn.get(i) == '\n') {
          byte[] line = new byte[i - appIn.position()];
          appIn.get(line);
          appIn.get();
          appIn.compact();
          String s = new String(line, StandardCharsets.UTF_8);
          return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
        }
      }
      appIn.compact();
      if (inboundDone || unwrap() == null) {
        return null;
      }
    }
  }

  /** Sends close_notify and closes the socket. */
  @Override
  public void close() throws IOException {
    try {
      engine.closeOutbound();
      while (!engine.isOutboundDone()) {
        wrap(EMPTY);
      }
    } catch (IOException | RuntimeException ignored) {
      // A peer that is gone already needs no close_notify.
    } finally {
      socket.close();
    }
  }

  private void runTasks() {
    Runnable task;
    while ((task = engine.getDelegatedTask()) != null) {
      task.run();
    }
  }

  private SSLEngineResult wrap(ByteBuffer src) throws IOException {
    while (true) {
      netOut.clear();
      SSLEngineResult result = engine.wrap(src, netOut);
      switch (result.getStatus()) {
        case BUFFER_OVERFLOW:
          netOut = ByteBuffer.allocate(Math.max(netOut.capacity() * 2, engine.getSession().getPacketBufferSize()));
          continue;
        case OK:
        case CLOSED:
          netOut.flip();
          out.write(netOut.array(), 0, netOut.limit());
          out.flush();
          afterOperation(result);
          return result;
        default:
          throw new IllegalStateException("wrap: " + result.getStatus());
      }
    }
  }

  // One successful unwrap (reading from the socket as often as it needs); null at end of stream.
  private SSLEngineResult unwrap() throws IOException {
    while (true) {
      netIn.flip();
      SSLEngineResult result;
      try {
        result = engine.unwrap(netIn, appIn);
      } finally {
        netIn.compact();
      }
      switch (result.getStatus()) {
        case OK:
          afterOperation(result);
          return result;
        case CLOSED:
          inboundDone = true;
          afterOperation(result);
          return result;
        case BUFFER_OVERFLOW:
          ByteBuffer bigger = ByteBuffer.allocate(appIn.position() + engine.getSession().getApplicationBufferSize());
          appIn.flip();
          bigger.put(appIn);
          appIn = bigger;
          continue;
        case BUFFER_UNDERFLOW:
          if (!netIn.hasRemaining()) {
            // A record longer than the buffer: grow it to what the session says a record takes.
            ByteBuffer grown = ByteBuffer.allocate(Math.max(netIn.capacity() * 2, engine.getSession().getPacketBufferSize()));
            netIn.flip();
            grown.put(netIn);
            netIn = grown;
          }
          int n = in.read(netIn.array(), netIn.arrayOffset() + netIn.position(), netIn.remaining());
          if (n < 0) {
            inboundDone = true;
            try {
              engine.closeInbound();
            } catch (SSLException truncated) {
              // No close_notify from the peer: as good as a close for these tests.
            }
            return null;
          }
          netIn.position(netIn.position() + n);
          continue;
        default:
          throw new IllegalStateException("unwrap: " + result.getStatus());
      }
    }
  }

  // After the handshake, TLS 1.3's NewSessionTicket (and a KeyUpdate) still need tasks or a
  // wrap; answer them here so the data loop never stalls on them.
  private void afterOperation(SSLEngineResult result) throws IOException {
    if (handshaking) {
      return;
    }
    HandshakeStatus status = result.getHandshakeStatus();
    if (status == HandshakeStatus.NEED_TASK) {
      runTasks();
      status = engine.getHandshakeStatus();
    }
    if (status == HandshakeStatus.NEED_WRAP && !engine.isOutboundDone()) {
      wrap(EMPTY);
    }
  }
}
