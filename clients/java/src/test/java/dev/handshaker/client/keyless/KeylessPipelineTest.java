package dev.handshaker.client.keyless;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * KeylessPipeline against a real service's Operate stream: many threads' signatures on one
 * stream, each checked with the certificate's public key; refusals, deadlines and a killed
 * service that fail only the operations they concern; and a JSSE server whose keyless keys
 * sign through the pipeline, fetched by openssl.
 */
class KeylessPipelineTest {
  private static final int ECDSA_P256_SHA256 = 0x0403;
  private static final int RSA_PSS_RSAE_SHA256 = 0x0804;

  private static KeylessService service;
  private static KeylessClient client;

  @BeforeAll
  static void start() throws Exception {
    service = KeylessService.create();
    service.generate("web", "ecdsa-p256", "DNS:localhost", "IP:127.0.0.1");
    service.allow("web", "sign");
    service.generate("legacy", "rsa-2048", "DNS:localhost", "IP:127.0.0.1");
    service.allow("legacy", "sign", "decrypt");
    service.start();
    client = KeylessClient.forAddress(service.address());
    service.awaitCredential(client, "legacy");
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

  private record Expected(String credential, int scheme, byte[] message, Status.Code refusal) {}

  @Test
  void concurrentSignsFromManyThreadsShareOneStreamAndRefusalsStayTheirOwn() throws Exception {
    PublicKey ec = client.credential("web").leaf().getPublicKey();
    PublicKey rsa = client.credential("legacy").leaf().getPublicKey();
    List<Expected> operations = new ArrayList<>();
    for (int i = 0; i < 240; i++) {
      byte[] message = ("operation " + i).getBytes(StandardCharsets.UTF_8);
      switch (i % 12) {
        case 5:
          operations.add(new Expected("nosuch", ECDSA_P256_SHA256, message, Status.Code.NOT_FOUND));
          break;
        case 11:
          // An EC key cannot sign RSA-PSS: the service names the scheme as the invalid argument.
          operations.add(new Expected("web", RSA_PSS_RSAE_SHA256, message, Status.Code.INVALID_ARGUMENT));
          break;
        default:
          operations.add(i % 2 == 0
              ? new Expected("web", ECDSA_P256_SHA256, message, null)
              : new Expected("legacy", RSA_PSS_RSAE_SHA256, message, null));
      }
    }
    try (KeylessClient pipelined = client.pipelined()) {
      ExecutorService threads = Executors.newFixedThreadPool(24);
      try {
        List<Future<Object>> results = new ArrayList<>();
        for (Expected op : operations) {
          // Blocking calls, as JSSE's Signature makes them: each thread waits for its own answer.
          results.add(threads.submit(() -> {
            try {
              return pipelined.sign(KeyRef.credential(op.credential()), op.scheme(), op.message());
            } catch (KeylessException e) {
              return e;
            }
          }));
        }
        for (int i = 0; i < operations.size(); i++) {
          Expected op = operations.get(i);
          Object result = results.get(i).get(30, TimeUnit.SECONDS);
          if (op.refusal() != null) {
            assertTrue(result instanceof KeylessException, "operation " + i + " was not refused");
            KeylessException refused = (KeylessException) result;
            assertEquals(op.refusal(), refused.code(), "operation " + i + ": " + result);
            // The OperationError's message comes along, naming what was wrong.
            String named = op.refusal() == Status.Code.NOT_FOUND ? "nosuch" : "scheme";
            assertTrue(refused.getMessage().contains(named), refused.getMessage());
            continue;
          }
          if (result instanceof KeylessException) {
            fail("operation " + i + " failed: " + result);
          }
          assertTrue(verifies(op.scheme() == ECDSA_P256_SHA256 ? ec : rsa, op.scheme(), op.message(), (byte[]) result),
              "operation " + i + "'s signature does not verify with " + op.credential() + "'s certificate");
        }
      } finally {
        threads.shutdownNow();
      }
      KeylessPipeline pipeline = pipelined.pipeline();
      assertEquals(operations.size(), pipeline.written());
      // Many threads' operations were on the stream at once, and never more than the service runs.
      assertTrue(pipeline.peakRunning() > 1, "peak " + pipeline.peakRunning());
      assertTrue(pipeline.peakRunning() <= KeylessPipeline.MAX_IN_FLIGHT, "peak " + pipeline.peakRunning());
      assertEquals(0, pipeline.pending());
    }
  }

  @Test
  void aTimedOutOperationFailsAloneAndItsLateAnswerIsDropped() throws Exception {
    try (KeylessPipeline pipeline = KeylessPipeline.over(channelOf(), Duration.ofSeconds(10))) {
      byte[] message = "before".getBytes(StandardCharsets.UTF_8);
      byte[] signature = pipeline.sign(KeyRef.credential("web"), ECDSA_P256_SHA256, message);
      assertTrue(verifies(client.credential("web").leaf().getPublicKey(), ECDSA_P256_SHA256, message, signature));

      service.pause();
      CompletableFuture<byte[]> late;
      long started = System.nanoTime();
      try {
        late = pipeline.signAsync(KeyRef.credential("web"), ECDSA_P256_SHA256, message, Duration.ofMillis(400));
        KeylessException timedOut = assertThrows(KeylessException.class, () -> KeylessPipeline.await(late));
        assertEquals(Status.Code.DEADLINE_EXCEEDED, timedOut.code());
        long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        assertTrue(waited >= 350 && waited < 3000, "timed out after " + waited + " ms");
      } finally {
        service.resume();
      }
      // The stream survived: the next operation works, and the late answer freed its slot
      // without reaching the failed future.
      byte[] after = pipeline.sign(KeyRef.credential("legacy"), RSA_PSS_RSAE_SHA256, message);
      assertTrue(verifies(client.credential("legacy").leaf().getPublicKey(), RSA_PSS_RSAE_SHA256, message, after));
      long deadline = System.currentTimeMillis() + 5000;
      while (pipeline.pending() > 0 && System.currentTimeMillis() < deadline) {
        Thread.sleep(20);
      }
      assertEquals(0, pipeline.pending(), "the late answer did not free its slot");
      assertTrue(late.isCompletedExceptionally());
      assertEquals(3, pipeline.written(), "one stream for all three");
    }
  }

  @Test
  void aKilledServiceFailsEveryWaitingOperationAtOnceAndARestartedOneServesTheNextStream() throws Exception {
    try (KeylessClient pipelined = client.pipelined()) {
      KeylessPipeline pipeline = pipelined.pipeline();
      byte[] message = "kill".getBytes(StandardCharsets.UTF_8);
      pipeline.sign(KeyRef.credential("web"), ECDSA_P256_SHA256, message);

      List<CompletableFuture<byte[]>> waiting = new ArrayList<>();
      long killed;
      service.pause();
      boolean paused = true;
      try {
        // More than the stream's 64: the rest wait in the pipeline and fail with the stream too.
        for (int i = 0; i < 100; i++) {
          waiting.add(pipeline.signAsync(KeyRef.credential("web"), ECDSA_P256_SHA256, message, Duration.ofSeconds(20)));
        }
        Thread.sleep(200);
        assertTrue(waiting.stream().noneMatch(CompletableFuture::isDone), "answers from a paused service");
        // The service's per-stream cap: 64 written, the other 36 held back here.
        assertEquals(KeylessPipeline.MAX_IN_FLIGHT, pipeline.running());
        assertEquals(100, pipeline.pending());
        killed = System.nanoTime();
        service.kill();
        paused = false;
      } finally {
        // A failed assertion must not leave the shared service stopped for the other tests.
        if (paused) {
          service.resume();
        }
      }
      for (CompletableFuture<byte[]> future : waiting) {
        try {
          future.get(5, TimeUnit.SECONDS);
          fail("an operation succeeded on a killed service");
        } catch (ExecutionException e) {
          assertEquals(Status.Code.UNAVAILABLE, ((KeylessException) e.getCause()).code(), e.getCause().toString());
        }
      }
      long took = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
      assertTrue(took < 3000, "the waiting operations failed " + took + " ms after the kill, not promptly");
      assertEquals(0, pipeline.pending());

      service.restart();
      // The next call opens a new stream on the reconnected channel.
      byte[] signature = pipelined.sign(KeyRef.credential("legacy"), RSA_PSS_RSAE_SHA256, message);
      assertTrue(verifies(client.credential("legacy").leaf().getPublicKey(), RSA_PSS_RSAE_SHA256, message, signature));
    }
  }

  @Test
  void decryptsAndDescribesCredentialsOnTheStream() throws Exception {
    KeylessPipeline pipeline = client.pipelined().pipeline();
    try (pipeline) {
      byte[] premaster = new byte[48];
      new java.security.SecureRandom().nextBytes(premaster);
      javax.crypto.Cipher encrypt = javax.crypto.Cipher.getInstance("RSA/ECB/PKCS1Padding");
      encrypt.init(javax.crypto.Cipher.ENCRYPT_MODE, client.credential("legacy").leaf().getPublicKey());
      byte[] ciphertext = encrypt.doFinal(premaster);
      assertArrayEquals(premaster, pipeline.decrypt(KeyRef.credential("legacy"), ciphertext, 48));
      // Implicit rejection: a ciphertext of the wrong length is 48 bytes all the same, not an error.
      assertEquals(48, pipeline.decrypt(KeyRef.credential("legacy"), new byte[256], 48).length);
      KeylessException denied = assertThrows(KeylessException.class,
          () -> pipeline.decrypt(KeyRef.credential("web"), ciphertext, 48));
      assertEquals(Status.Code.PERMISSION_DENIED, denied.code(), "web has no decrypt grant");
      assertEquals("legacy", pipeline.credentialAsync(KeyRef.credential("legacy"), Duration.ofSeconds(5))
          .get(10, TimeUnit.SECONDS).getCredential());
    }
  }

  @Test
  void closedPipelineRefusesAtOnce() {
    KeylessPipeline pipeline = KeylessPipeline.over(channelOf(), Duration.ofSeconds(5));
    pipeline.close();
    KeylessException refused = assertThrows(KeylessException.class,
        () -> pipeline.sign(KeyRef.credential("web"), ECDSA_P256_SHA256, new byte[] {1}));
    assertEquals(Status.Code.CANCELLED, refused.code());
  }

  @Test
  void opensslFetchesFromAJsseServerWhoseKeylessKeysSignThroughThePipeline() throws Exception {
    Assumptions.assumeTrue(Command.available("openssl"), "openssl is not installed");
    try (KeylessClient pipelined = client.pipelined();
        TlsServer server = new TlsServer(KeylessKeyManager.of(pipelined, "web", "legacy"), null, false)) {
      // Concurrent handshakes, ECDSA and RSA (PSS in TLS 1.3, ECDHE_RSA in 1.2), on one stream.
      // The last word of each run is the key algorithm the server's answer must name.
      String[][] runs = {
          {"-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256", "EC"},
          {"-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256", "RSA"},
          {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "EC"},
          {"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "RSA"},
      };
      List<CompletableFuture<Command.Result>> results = new ArrayList<>();
      for (String[] options : runs) {
        results.add(CompletableFuture.supplyAsync(() -> {
          try {
            return sClient(server.port(), "pipelined", Arrays.copyOf(options, options.length - 1));
          } catch (Exception e) {
            throw new IllegalStateException(e);
          }
        }));
      }
      for (int i = 0; i < runs.length; i++) {
        Command.Result result = results.get(i).get(60, TimeUnit.SECONDS);
        String protocol = runs[i][0].equals("-tls1_3") ? "TLSv1.3" : "TLSv1.2";
        String algorithm = runs[i][runs[i].length - 1];
        assertTrue(result.stdout().contains("echo: pipelined over " + protocol + " "), result.all());
        assertTrue(result.stdout().contains(" " + algorithm + " "), result.all());
      }
      for (int i = 0; i < runs.length; i++) {
        assertNull(server.next().failure());
      }
      assertEquals(runs.length, pipelined.pipeline().written(), "one signature per handshake, all on the stream");
    }
  }

  private static Command.Result sClient(int port, String line, String... options) throws Exception {
    List<String> command = new ArrayList<>(List.of("openssl", "s_client", "-connect", "127.0.0.1:" + port,
        "-servername", "localhost", "-CAfile", service.devCa().toString(), "-verify_return_error",
        "-verify_hostname", "localhost", "-quiet"));
    command.addAll(List.of(options));
    return Command.run((line + "\n").getBytes(StandardCharsets.UTF_8), command.toArray(new String[0]));
  }

  // A pipeline of the test's own goes over the shared client's channel.
  private static io.grpc.Channel channelOf() {
    return client.channel();
  }

  static boolean verifies(PublicKey key, int scheme, byte[] message, byte[] signature) throws Exception {
    Signature verifier;
    if (scheme == RSA_PSS_RSAE_SHA256) {
      verifier = Signature.getInstance("RSASSA-PSS");
      verifier.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1));
    } else {
      verifier = Signature.getInstance("SHA256withECDSA");
    }
    verifier.initVerify(key);
    verifier.update(message);
    return verifier.verify(signature);
  }
}
