package dev.handshaker.client.keyless;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The keyless adapters on the SSLEngine path that Netty, Jetty and gRPC use: JSSE asks the key
 * manager chooseEngineServerAlias / chooseEngineClientAlias and the trust manager
 * checkServerTrusted / checkClientTrusted with the engine, never the Socket variants. Servers are
 * {@link EngineServer}s fetched by openssl and curl; clients are SSLEngines driven by {@link
 * EngineConnection}, against engine servers.
 */
class KeylessEngineTest {
  private static KeylessService service;
  private static KeylessClient client;

  @BeforeAll
  static void start() throws Exception {
    service = KeylessService.create();
    service.generate("web", "ecdsa-p256", "DNS:localhost", "IP:127.0.0.1");
    service.allow("web", "sign");
    service.generate("legacy", "rsa-2048", "DNS:localhost", "IP:127.0.0.1");
    service.allow("legacy", "sign");
    service.generate("other", "ecdsa-p256", "DNS:other.test");
    service.allow("other", "sign");
    service.generate("client", "ecdsa-p256", "DNS:client.test");
    service.allow("client", "sign");
    service.generateForeign("impostor", "DNS:localhost", "IP:127.0.0.1");
    service.start();
    client = KeylessClient.forAddress(service.address());
    service.awaitCredential(client, "client");
  }

  @AfterAll
  static void stop() throws Exception {
    if (client != null) {
      client.close();
    }
    if (service != null) {
      service.close();
    }
  }

  @Test
  void opensslExchangesDataWithAnEngineServerServingKeylessEcdsaAndRsa() throws Exception {
    Assumptions.assumeTrue(Command.available("openssl"), "openssl is not installed");
    for (String credential : new String[] {"web", "legacy"}) {
      String algorithm = credential.equals("web") ? "EC" : "RSA";
      try (EngineServer server = new EngineServer(KeylessKeyManager.of(client, credential), null, false)) {
        for (String version : new String[] {"-tls1_3", "-tls1_2"}) {
          String protocol = version.equals("-tls1_3") ? "TLSv1.3" : "TLSv1.2";
          Command.Result result = sClient(server.port(), "localhost", "ping " + credential, version);
          assertTrue(result.stdout().contains("echo: ping " + credential + " over " + protocol + " "), result.all());
          assertTrue(result.stdout().contains(" " + algorithm + " "), result.all());
          TlsServer.Outcome outcome = server.next();
          assertNull(outcome.failure());
          assertEquals(protocol, outcome.protocol());
        }
      }
    }
  }

  @Test
  void curlFetchesFromAnEngineServer() throws Exception {
    Assumptions.assumeTrue(Command.available("curl"), "curl is not installed");
    try (EngineServer server = new EngineServer(KeylessKeyManager.of(client, "web", "legacy"), null, false)) {
      String url = "https://localhost:" + server.port() + "/";
      String resolve = "localhost:" + server.port() + ":127.0.0.1";
      String[][] runs = {{"--tlsv1.3", "TLSv1.3"}, {"--tls-max", "1.2", "TLSv1.2"}};
      for (String[] run : runs) {
        List<String> command = new ArrayList<>(List.of("curl", "-sS", "--cacert", service.devCa().toString(),
            "--resolve", resolve));
        command.addAll(List.of(run).subList(0, run.length - 1));
        command.add(url);
        Command.Result result = Command.run(new byte[0], command.toArray(new String[0]));
        String protocol = run[run.length - 1];
        assertEquals(0, result.exit(), protocol + ": " + result.all());
        assertTrue(result.stdout().startsWith("hello over " + protocol + " "), result.all());
        assertNull(server.next().failure());
      }
    }
  }

  @Test
  void engineServerPicksTheCredentialTheClientsSniNames() throws Exception {
    Assumptions.assumeTrue(Command.available("openssl"), "openssl is not installed");
    // "other" comes first, so serving localhost's certificate takes the SNI from the engine's
    // handshake session; openssl checks the name it asked for.
    try (EngineServer server = new EngineServer(KeylessKeyManager.of(client, "other", "web"), null, false)) {
      for (String host : new String[] {"localhost", "other.test"}) {
        Command.Result result = sClient(server.port(), host, "sni " + host, "-tls1_3");
        assertTrue(result.stdout().contains("echo: sni " + host + " over TLSv1.3"), host + ": " + result.all());
        assertNull(server.next().failure());
      }
    }
  }

  @Test
  void engineClientTrustsAGoodServerByHostNameAndIpLiteral() throws Exception {
    try (EngineServer server = new EngineServer(KeylessKeyManager.of(client, "web"), null, false)) {
      SSLContext context = clientContext(null);
      // "localhost" has no dot, so JSSE sends no SNI: the trust manager takes the engine's peer host.
      assertTrue(engineExchange(context, server.port(), "localhost", "TLSv1.3").startsWith("echo: hi over TLSv1.3 "));
      assertNull(server.next().failure());
      assertTrue(engineExchange(context, server.port(), "localhost", "TLSv1.2").startsWith("echo: hi over TLSv1.2 "));
      assertNull(server.next().failure());
      // An IP literal: checked against the iPAddress SAN.
      assertTrue(engineExchange(context, server.port(), "127.0.0.1", "TLSv1.3").startsWith("echo: hi over TLSv1.3 "));
      assertNull(server.next().failure());
    }
  }

  @Test
  void engineClientRefusesAWrongHostName() throws Exception {
    try (EngineServer server = new EngineServer(KeylessKeyManager.of(client, "web"), null, false)) {
      // wrong.test goes out as SNI, and the server still sends localhost's certificate.
      SSLException failed = assertThrows(SSLException.class,
          () -> engineExchange(clientContext(null), server.port(), "wrong.test", "TLSv1.3"));
      KeylessCertificateException cause = keylessCause(failed);
      assertEquals(KeylessCertificateException.BAD_CERTIFICATE, cause.alert());
      assertNotNull(server.next().failure(), "the server's handshake succeeded");

      // A name without a dot is never sent as SNI: the engine's peer host is what gets checked.
      failed = assertThrows(SSLException.class,
          () -> engineExchange(clientContext(null), server.port(), "wronghost", "TLSv1.2"));
      assertEquals(KeylessCertificateException.BAD_CERTIFICATE, keylessCause(failed).alert());
      assertNotNull(server.next().failure(), "the server's handshake succeeded");

      // An engine made without a peer host has no name to check: refused, not waved through.
      failed = assertThrows(SSLException.class,
          () -> engineExchange(clientContext(null), server.port(), null, "TLSv1.3"));
      assertTrue(causeMessages(failed).contains("no host name to check"), causeMessages(failed));
      assertNotNull(server.next().failure(), "the server's handshake succeeded");
    }
  }

  private static String causeMessages(Throwable failure) {
    StringBuilder messages = new StringBuilder();
    for (Throwable t = failure; t != null; t = t.getCause()) {
      messages.append(t).append('\n');
    }
    return messages.toString();
  }

  @Test
  void engineClientRefusesAServerFromAnUnknownCa() throws Exception {
    try (EngineServer server = new EngineServer(foreignKeyManager(), null, false)) {
      SSLException failed = assertThrows(SSLException.class,
          () -> engineExchange(clientContext(null), server.port(), "localhost", "TLSv1.2"));
      assertEquals(KeylessCertificateException.UNKNOWN_CA, keylessCause(failed).alert());
      assertNotNull(server.next().failure(), "the server's handshake succeeded");
    }
  }

  @Test
  void engineServerAuthenticatesClientsThroughTheValidator() throws Exception {
    KeylessTrustManager clientCheck = new KeylessTrustManager(client, null);
    try (EngineServer server = new EngineServer(KeylessKeyManager.of(client, "web"), clientCheck, true)) {
      // The client's key is keyless too, chosen by chooseEngineClientAlias.
      SSLContext withCertificate = clientContext(KeylessKeyManager.of(client, "client"));
      for (String protocol : new String[] {"TLSv1.3", "TLSv1.2"}) {
        String answer = engineExchange(withCertificate, server.port(), "localhost", protocol);
        assertTrue(answer.startsWith("echo: hi over " + protocol + " "), answer);
        assertTrue(answer.contains("CN=client") || answer.contains("client.test"), answer);
        TlsServer.Outcome outcome = server.next();
        assertNull(outcome.failure());
        assertTrue(outcome.peerSubject().contains("client"), outcome.peerSubject());
      }

      // openssl with a certificate from a CA the service does not trust: refused by the server.
      if (Command.available("openssl")) {
        Command.Result result = sClient(server.port(), "localhost", "impostor", "-tls1_3",
            "-cert", service.foreignCertFile("impostor").toString(),
            "-key", service.foreignKeyFile("impostor").toString());
        assertTrue(!result.stdout().contains("echo:"), result.all());
        Exception refused = server.next().failure();
        assertNotNull(refused, "the engine server accepted the impostor");
        assertEquals(KeylessCertificateException.UNKNOWN_CA, keylessCause(refused).alert());
      }
    }
  }

  private static KeyManager foreignKeyManager() throws Exception {
    KeyStore keys = KeyStore.getInstance("PKCS12");
    keys.load(null, null);
    keys.setKeyEntry("impostor", service.foreignKey("impostor"), new char[0], service.foreignChain("impostor"));
    KeyManagerFactory factory = KeyManagerFactory.getInstance("PKIX");
    factory.init(keys, new char[0]);
    return factory.getKeyManagers()[0];
  }

  private static SSLContext clientContext(KeyManager keyManager) throws Exception {
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(keyManager == null ? null : new KeyManager[] {keyManager},
        new TrustManager[] {new KeylessTrustManager(client, null)}, null);
    return context;
  }

  // An SSLEngine client made for `host` (its SNI and peer host), on a socket to the loopback
  // server: one line out, the server's answer back.
  private static String engineExchange(SSLContext context, int port, String host, String protocol) throws Exception {
    Socket socket = new Socket(InetAddress.getLoopbackAddress(), port);
    SSLEngine engine = host == null ? context.createSSLEngine() : context.createSSLEngine(host, port);
    engine.setUseClientMode(true);
    engine.setEnabledProtocols(new String[] {protocol});
    try (EngineConnection tls = new EngineConnection(engine, socket)) {
      socket.setSoTimeout(20_000);
      tls.handshake();
      tls.write("hi\n".getBytes(StandardCharsets.UTF_8));
      String answer = tls.readLine();
      assertNotNull(answer, "the server closed without answering");
      return answer;
    }
  }

  private static Command.Result sClient(int port, String host, String line, String... options) throws Exception {
    List<String> command = new ArrayList<>(List.of("openssl", "s_client", "-connect", "127.0.0.1:" + port,
        "-servername", host, "-CAfile", service.devCa().toString(), "-verify_return_error",
        "-verify_hostname", host, "-quiet"));
    command.addAll(List.of(options));
    return Command.run((line + "\n").getBytes(StandardCharsets.UTF_8), command.toArray(new String[0]));
  }

  private static KeylessCertificateException keylessCause(Throwable failure) {
    for (Throwable t = failure; t != null; t = t.getCause()) {
      if (t instanceof KeylessCertificateException) {
        return (KeylessCertificateException) t;
      }
    }
    throw new AssertionError("no KeylessCertificateException in the cause chain", failure);
  }
}
