package dev.handshaker.client.keyless;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.cert.X509Certificate;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSession;
import javax.net.ssl.TrustManager;

/**
 * The SSLEngine twin of {@link TlsServer}: a loopback ServerSocket whose connections each run an
 * SSLEngine in server mode through {@link EngineConnection}, so JSSE reaches the key manager by
 * chooseEngineServerAlias and the trust manager by checkClientTrusted(..., SSLEngine). Answers
 * as TlsServer does (GET as HTTP/1.1, else "echo: LINE over PROTOCOL SUITE KEYALG PEER") and
 * queues each connection's outcome.
 */
final class EngineServer implements AutoCloseable {
  private final SSLContext context;
  private final boolean needClientAuth;
  private final ServerSocket listener;
  private final BlockingQueue<TlsServer.Outcome> outcomes = new LinkedBlockingQueue<>();

  EngineServer(KeyManager keyManager, TrustManager trustManager, boolean needClientAuth) throws Exception {
    context = SSLContext.getInstance("TLS");
    context.init(new KeyManager[] {keyManager}, trustManager == null ? null : new TrustManager[] {trustManager}, null);
    this.needClientAuth = needClientAuth;
    listener = new ServerSocket();
    listener.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 50);
    Thread acceptor = new Thread(this::acceptLoop, "keyless-engine-server");
    acceptor.setDaemon(true);
    acceptor.start();
  }

  private void acceptLoop() {
    while (!listener.isClosed()) {
      Socket socket;
      try {
        socket = listener.accept();
      } catch (IOException closed) {
        return;
      }
      Thread connection = new Thread(() -> serve(socket), "keyless-engine-connection");
      connection.setDaemon(true);
      connection.start();
    }
  }

  private void serve(Socket socket) {
    SSLEngine engine = context.createSSLEngine();
    engine.setUseClientMode(false);
    engine.setEnabledProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
    engine.setNeedClientAuth(needClientAuth);
    try (EngineConnection tls = new EngineConnection(engine, socket)) {
      socket.setSoTimeout(20_000);
      tls.handshake();
      SSLSession session = engine.getSession();
      String peer = "-";
      if (needClientAuth) {
        peer = ((X509Certificate) session.getPeerCertificates()[0]).getSubjectX500Principal().getName();
      }
      String about = session.getProtocol() + " " + session.getCipherSuite() + " "
          + session.getLocalCertificates()[0].getPublicKey().getAlgorithm() + " " + peer;
      String line = tls.readLine();
      if (line != null && line.startsWith("GET ")) {
        for (String header = tls.readLine(); header != null && !header.isEmpty(); header = tls.readLine()) {
          // The request's headers say nothing the test needs.
        }
        byte[] body = ("hello over " + about + "\n").getBytes(StandardCharsets.UTF_8);
        tls.write(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + body.length
            + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        tls.write(body);
      } else {
        tls.write(("echo: " + line + " over " + about + "\n").getBytes(StandardCharsets.UTF_8));
      }
      outcomes.add(new TlsServer.Outcome(session.getProtocol(), session.getCipherSuite(), peer, null));
    } catch (Exception e) {
      outcomes.add(new TlsServer.Outcome(null, null, null, e));
    }
  }

  int port() {
    return listener.getLocalPort();
  }

  /** The next connection's outcome, waiting up to 20 s. */
  TlsServer.Outcome next() throws InterruptedException {
    TlsServer.Outcome outcome = outcomes.poll(20, TimeUnit.SECONDS);
    if (outcome == null) {
      throw new AssertionError("the engine server saw no connection finish");
    }
    return outcome;
  }

  @Override
  public void close() throws IOException {
    listener.close();
  }
}
