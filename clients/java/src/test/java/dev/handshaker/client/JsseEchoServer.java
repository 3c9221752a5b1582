package dev.handshaker.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;

/**
 * A stock JSSE TLS 1.3 server on a free loopback port that serves any number of connections at
 * once, each echoing what it reads until the client closes. Connections whose handshake fails are
 * counted and closed.
 */
final class JsseEchoServer implements AutoCloseable {
  private final SSLServerSocket listener;
  private final ExecutorService connections = Executors.newCachedThreadPool(daemon("jsse-echo"));
  private final Thread acceptor;
  private final AtomicInteger echoed = new AtomicInteger();
  private final AtomicInteger failed = new AtomicInteger();

  JsseEchoServer(SSLContext context) throws IOException {
    listener =
        (SSLServerSocket)
            context.getServerSocketFactory().createServerSocket(0, 256, InetAddress.getLoopbackAddress());
    SSLParameters parameters = listener.getSSLParameters();
    parameters.setProtocols(new String[] {"TLSv1.3"});
    listener.setSSLParameters(parameters);
    acceptor =
        new Thread(
            () -> {
              while (!listener.isClosed()) {
                try {
                  SSLSocket socket = (SSLSocket) listener.accept();
                  connections.execute(() -> echo(socket));
                } catch (IOException closed) {
                  return;
                }
              }
            },
            "jsse-echo-acceptor");
    acceptor.setDaemon(true);
    acceptor.start();
  }

  private void echo(SSLSocket socket) {
    try (socket) {
      socket.setSoTimeout(30_000);
      socket.startHandshake();
      InputStream in = socket.getInputStream();
      OutputStream out = socket.getOutputStream();
      byte[] buffer = new byte[16 * 1024];
      for (int n; (n = in.read(buffer)) > 0; ) {
        out.write(buffer, 0, n);
        out.flush();
      }
      echoed.incrementAndGet();
    } catch (IOException e) {
      failed.incrementAndGet();
    }
  }

  int port() {
    return listener.getLocalPort();
  }

  /** How many connections echoed until the client closed. */
  int echoed() {
    return echoed.get();
  }

  static java.util.concurrent.ThreadFactory daemon(String name) {
    return runnable -> {
      Thread thread = new Thread(runnable, name);
      thread.setDaemon(true);
      return thread;
    };
  }

  @Override
  public void close() throws IOException {
    listener.close();
    connections.shutdownNow();
    try {
      acceptor.join(10_000);
      connections.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
