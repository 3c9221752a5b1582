package dev.handshaker.client.keyless;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.util.Arrays;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Stock JSSE with the keyless adapters, against real peers: SSLServerSockets whose key manager is
 * a KeylessKeyManager, fetched by curl and openssl s_client over TLS 1.3 and 1.2 (ECDSA, RSA, and
 * the RSA key exchange through the provider's Cipher); JSSE clients whose trust manager is a
 * KeylessTrustManager; and client authentication checked by the service.
 */
class KeylessJsseTest {
  private static final String RSA_KEX = "TLS_RSA_WITH_AES_128_GCM_SHA256";

  private static KeylessService service;
  private static KeylessClient client;

  @BeforeAll
  static void start() throws Exception {
    service = KeylessService.create();
    service.generate("web", "ecdsa-p256", "DNS:localhost", "IP:127.0.0.1");
    service.allow("web", "sign");
    service.generate("legacy", "rsa-2048", "DNS:localhost", "IP:127.0.0.1");
    service.allow("legacy", "sign", "decrypt");
    service.generate("edge", "ed25519", "DNS:localhost");
    service.allow("edge", "sign");
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

  private static TlsServer keylessServer(String credential, String... cipherSuites) throws Exception {
    return new TlsServer(KeylessKeyManager.of(client, credential), null, false, cipherSuites);
  }

  @Test
  void curlFetchesFromJsseServingKeylessEcdsaAndRsa() throws Exception {
    Assumptions.assumeTrue(Command.available("curl"), "curl is not installed");
    for (String credential : new String[] {"web", "legacy"}) {
      String algorithm = credential.equals("web") ? "EC" : "RSA";
      try (TlsServer server = keylessServer(credential)) {
        for (String[] version : new String[][] {{"--tlsv1.3", "TLSv1.3"}, {"--tls-max", "1.2", "TLSv1.2"}}) {
          String url = "https://localhost:" + server.port() + "/";
          String[] base = {"curl", "-sS", "--cacert", service.devCa().toString(),
              "--resolve", "localhost:" + server.port() + ":127.0.0.1"};
          String[] command = concat(base, Arrays.copyOf(version, version.length - 1), new String[] {url});
          Command.Result result = Command.run(new byte[0], command);
          String expectedProtocol = version[version.length - 1];
          assertEquals(0, result.exit(), credential + " " + expectedProtocol + ": " + result.all());
          assertTrue(result.stdout().startsWith("hello over " + expectedProtocol + " "), result.all());
          assertTrue(result.stdout().contains(" " + algorithm + " "), result.all());
          TlsServer.Outcome outcome = server.next();
          assertNull(outcome.failure());
          assertEquals(expectedProtocol, outcome.protocol());
        }
      }
    }
  }

  @Test
  void opensslExchangesDataWithJsseServingKeylessCredentials() throws Exception {
    Assumptions.assumeTrue(Command.available("openssl"), "openssl is not installed");
    // Ed25519 too: JSSE's "Ed25519" Signature sends the whole message (scheme 0x0807).
    for (String credential : new String[] {"web", "legacy", "edge"}) {
      try (TlsServer server = keylessServer(credential)) {
        for (String version : new String[] {"-tls1_3", "-tls1_2"}) {
          Command.Result result = sClient(server.port(), "ping " + credential, version);
          String protocol = version.equals("-tls1_3") ? "TLSv1.3" : "TLSv1.2";
          assertTrue(result.stdout().contains("echo: ping " + credential + " over " + protocol + " "), result.all());
          TlsServer.Outcome outcome = server.next();
          assertNull(outcome.failure());
          if (protocol.equals("TLSv1.2")) {
            // Forward-secret ECDHE, signed by the keystore's key in ServerKeyExchange.
            assertTrue(outcome.cipherSuite().startsWith("TLS_ECDHE_"), outcome.cipherSuite());
          }
        }
      }
    }
  }

  @Test
  void rsaKeyExchangeDecryptsThePremasterThroughTheService() throws Exception {
    Assumptions.assumeTrue(Command.available("openssl"), "openssl is not installed");
    String[] supported = SSLContext.getDefault().getSupportedSSLParameters().getCipherSuites();
    // jdk.tls.disabledAlgorithms drops TLS_RSA_* in newer JDKs; this one (17.0.15) keeps them.
    Assumptions.assumeTrue(Arrays.asList(supported).contains(RSA_KEX), RSA_KEX + " is disabled in this JDK");
    try (TlsServer server = keylessServer("legacy", RSA_KEX, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")) {
      Command.Result result = sClient(server.port(), "premaster", "-tls1_2", "-cipher", "AES128-GCM-SHA256");
      assertTrue(result.stdout().contains("echo: premaster over TLSv1.2 " + RSA_KEX + " RSA"), result.all());
      assertEquals(RSA_KEX, server.next().cipherSuite());
    }
  }

  private static Command.Result sClient(int port, String line, String... options) throws Exception {
    String[] base = {"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-servername", "localhost",
        "-CAfile", service.devCa().toString(), "-verify_return_error", "-verify_hostname", "localhost", "-quiet"};
    return Command.run((line + "\n").getBytes(StandardCharsets.UTF_8), concat(base, options));
  }

  @Test
  void jsseClientTrustsAGoodServerThroughTheValidator() throws Exception {
    try (TlsServer server = keylessServer("web")) {
      SSLContext context = clientContext(null);
      // By name (SNI) and by IP literal (no SNI; the iPAddress SAN is checked).
      assertTrue(exchange(context, server.port(), "localhost").contains("echo: hi over TLSv1.3"));
      assertNull(server.next().failure());
      assertTrue(exchange(context, server.port(), "127.0.0.1").contains("echo: hi over TLSv1.3"));
      assertNull(server.next().failure());
    }
  }

  @Test
  void jsseClientRefusesAWrongHostNameWithTheServicesAlert() throws Exception {
    try (TlsServer server = keylessServer("web")) {
      SSLHandshakeException failed = assertThrows(SSLHandshakeException.class,
          () -> exchange(clientContext(null), server.port(), "wrong.test"));
      KeylessCertificateException cause = keylessCause(failed);
      assertEquals(KeylessCertificateException.BAD_CERTIFICATE, cause.alert());
      assertTrue(cause.getMessage().contains("bad_certificate (42)"), cause.getMessage());
      // JSSE chose the alert it sent (this JDK sends certificate_unknown); the server's
      // handshake failed, by that alert or by the closed connection, whichever it saw first.
      assertServerHandshakeFailed(server.next().failure());
    }
  }

  @Test
  void jsseClientRefusesAServerFromAnUnknownCa() throws Exception {
    KeyStore keys = KeyStore.getInstance("PKCS12");
    keys.load(null, null);
    keys.setKeyEntry("impostor", service.foreignKey("impostor"), new char[0], service.foreignChain("impostor"));
    KeyManagerFactory factory = KeyManagerFactory.getInstance("PKIX");
    factory.init(keys, new char[0]);
    try (TlsServer server = new TlsServer(factory.getKeyManagers()[0], null, false)) {
      SSLHandshakeException failed = assertThrows(SSLHandshakeException.class,
          () -> exchange(clientContext(null), server.port(), "localhost"));
      assertEquals(KeylessCertificateException.UNKNOWN_CA, keylessCause(failed).alert());
      assertServerHandshakeFailed(server.next().failure());
    }
  }

  @Test
  void jsseServerAuthenticatesClientsThroughTheValidator() throws Exception {
    KeylessTrustManager clientCheck = new KeylessTrustManager(client, null);
    try (TlsServer server = new TlsServer(KeylessKeyManager.of(client, "web"), clientCheck, true)) {
      // The client's key is keyless too: KeylessKeyManager.chooseClientAlias picks it.
      SSLContext withCertificate = clientContext(KeylessKeyManager.of(client, "client"));
      for (String protocol : new String[] {"TLSv1.3", "TLSv1.2"}) {
        String answer = exchange(withCertificate, server.port(), "localhost", protocol);
        assertTrue(answer.contains(" over " + protocol + " "), answer);
        assertTrue(answer.contains("CN=client") || answer.contains("client.test"), answer);
        assertNull(server.next().failure());
      }

      // A client certificate from a CA the service does not trust: the server refuses it.
      KeyStore keys = KeyStore.getInstance("PKCS12");
      keys.load(null, null);
      keys.setKeyEntry("impostor", service.foreignKey("impostor"), new char[0], service.foreignChain("impostor"));
      KeyManagerFactory factory = KeyManagerFactory.getInstance("PKIX");
      factory.init(keys, new char[0]);
      SSLContext impostor = clientContext(factory.getKeyManagers()[0]);
      assertThrows(Exception.class, () -> exchange(impostor, server.port(), "localhost", "TLSv1.3"));
      Exception refused = server.next().failure();
      assertNotNull(refused);
      assertEquals(KeylessCertificateException.UNKNOWN_CA, keylessCause(refused).alert());
    }
  }

  private static SSLContext clientContext(KeyManager keyManager) throws Exception {
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(keyManager == null ? null : new KeyManager[] {keyManager},
        new TrustManager[] {new KeylessTrustManager(client, null)}, null);
    return context;
  }

  private static String exchange(SSLContext context, int port, String host) throws Exception {
    return exchange(context, port, host, "TLSv1.3");
  }

  // Connects to the loopback server as `host` (the name SNI sends and the trust manager checks)
  // and returns the server's answer to one line.
  private static String exchange(SSLContext context, int port, String host, String protocol) throws Exception {
    try (Socket raw = new Socket(InetAddress.getLoopbackAddress(), port);
        SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(raw, host, port, true)) {
      socket.setSoTimeout(20_000);
      SSLParameters parameters = socket.getSSLParameters();
      parameters.setProtocols(new String[] {protocol});
      if (!PeerName.host(host).equals(PeerName.ip(host))) {
        parameters.setServerNames(java.util.List.of(new SNIHostName(host)));
      }
      socket.setSSLParameters(parameters);
      socket.startHandshake();
      OutputStream out = socket.getOutputStream();
      out.write("hi\n".getBytes(StandardCharsets.UTF_8));
      out.flush();
      return new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8)).readLine();
    }
  }

  private static void assertServerHandshakeFailed(Exception serverSide) {
    assertNotNull(serverSide, "the server's handshake succeeded");
  }

  private static KeylessCertificateException keylessCause(Throwable failure) {
    for (Throwable t = failure; t != null; t = t.getCause()) {
      if (t instanceof KeylessCertificateException) {
        return (KeylessCertificateException) t;
      }
    }
    throw new AssertionError("no KeylessCertificateException in the cause chain", failure);
  }

  private static String[] concat(String[]... parts) {
    return Arrays.stream(parts).flatMap(Arrays::stream).toArray(String[]::new);
  }

}
