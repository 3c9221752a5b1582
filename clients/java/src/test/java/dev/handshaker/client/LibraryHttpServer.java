package dev.handshaker.client;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * An HTTP/1.1 server built on {@link HandshakerServerSocket}: it answers one request with a body
 * naming the path, then reports what the handshake negotiated (or how it failed).
 */
final class LibraryHttpServer implements AutoCloseable {
  private final HandshakerServerSocket listener;
  private final CompletableFuture<SessionInfo> served = new CompletableFuture<>();
  private final Thread thread;

  LibraryHttpServer(ServerConfig config) throws IOException {
    listener = HandshakerServerSocket.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), config);
    thread =
        new Thread(
            () -> {
              try (HandshakerSocket socket = listener.accept()) {
                socket.setSoTimeout(20_000);
                socket.startHandshake();
                String head = Http.readHead(socket.getInputStream());
                Http.respond(socket.getOutputStream(), "hello from handshaker, path " + Http.path(head));
                served.complete(socket.session());
              } catch (Throwable error) {
                served.completeExceptionally(error);
              }
            },
            "library-http-server");
    thread.setDaemon(true);
    thread.start();
  }

  int port() {
    return listener.getLocalPort();
  }

  /** The served connection's session; its failure as the cause of an ExecutionException. */
  SessionInfo served() throws Exception {
    return served.get(30, TimeUnit.SECONDS);
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
