package dev.handshaker.client;

import java.io.IOException;
import java.net.InetAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;

/** A stock JSSE SSLServerSocket on a free loopback port that serves one connection in a thread. */
final class JsseServer<T> implements AutoCloseable {
  interface Handler<T> {
    T serve(SSLSocket socket) throws Exception;
  }

  private final SSLServerSocket listener;
  private final CompletableFuture<T> result = new CompletableFuture<>();
  private final Thread thread;

  JsseServer(SSLContext context, boolean needClientAuth, String[] suites, Handler<T> handler)
      throws IOException {
    this(context, "TLSv1.3", needClientAuth, suites, handler);
  }

  /** A server that speaks only {@code protocol} ("TLSv1.3" or "TLSv1.2"). */
  JsseServer(
      SSLContext context, String protocol, boolean needClientAuth, String[] suites, Handler<T> handler)
      throws IOException {
    listener =
        (SSLServerSocket)
            context.getServerSocketFactory().createServerSocket(0, 1, InetAddress.getLoopbackAddress());
    SSLParameters parameters = listener.getSSLParameters();
    parameters.setProtocols(new String[] {protocol});
    parameters.setApplicationProtocols(new String[] {"http/1.1"});
    parameters.setNeedClientAuth(needClientAuth);
    if (suites != null) {
      parameters.setCipherSuites(suites);
    }
    listener.setSSLParameters(parameters);
    thread =
        new Thread(
            () -> {
              try (SSLSocket socket = (SSLSocket) listener.accept()) {
                socket.setSoTimeout(20_000);
                result.complete(handler.serve(socket));
              } catch (Throwable error) {
                result.completeExceptionally(error);
              }
            },
            "jsse-server");
    thread.setDaemon(true);
    thread.start();
  }

  int port() {
    return listener.getLocalPort();
  }

  /** The handler's result; its exception as the cause of an ExecutionException. */
  T result() throws InterruptedException, ExecutionException, TimeoutException {
    return result.get(30, TimeUnit.SECONDS);
  }

  @Override
  public void close() throws IOException {
    listener.close();
    try {
      thread.join(10_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
