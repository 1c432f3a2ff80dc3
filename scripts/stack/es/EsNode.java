/*
 * EsNode starts a single Elasticsearch 8 node in-process from jars fetched from Maven
 * Central, without the Elasticsearch distribution archive or its CLI launcher.
 *
 * The server jars are on the Java module path (as in the distribution); modules that Elastic
 * publishes as Maven artifacts (transport-netty4, which provides HTTP) are laid out by
 * scripts/stack.sh as ordinary module bundles under <home>/modules/<name>/ and loaded by the
 * server's own PluginsLoader. Because the node is built through the public Node constructor
 * rather than org.elasticsearch.bootstrap.Elasticsearch, the distribution's "can not run as
 * root" refusal and the production bootstrap checks do not apply; the node only listens on
 * loopback.
 *
 * Usage: java --module-path LIBS --add-modules ALL-MODULE-PATH -cp CLASSES EsNode HOME
 * Settings come from HOME/config/elasticsearch.yml (written by scripts/stack.sh).
 */

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginBundle;
import org.elasticsearch.plugins.PluginsLoader;

public final class EsNode {

    private EsNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: EsNode HOME");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Path config = home.resolve("config");
        if (!Files.isRegularFile(config.resolve("elasticsearch.yml"))) {
            throw new IllegalStateException("missing " + config.resolve("elasticsearch.yml"));
        }

        // Route Elasticsearch's internal logging API to Log4j before any server class logs.
        LogConfigurator.configureESLogging();
        LogConfigurator.registerErrorListener();

        // Only path.home is passed in; everything else is read from elasticsearch.yml.
        Settings initial = Settings.builder().put("path.home", home.toString()).build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(initial, Map.of(), config,
            () -> "es-dev");

        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env, true);

        Set<PluginBundle> modules = PluginsLoader.loadModulesBundles(env.modulesDir());
        Set<PluginBundle> plugins = PluginsLoader.loadPluginsBundles(env.pluginsDir());
        PluginsLoader loader = PluginsLoader.createPluginsLoader(modules, plugins, Map.of());

        Node node = new Node(env, loader);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.prepareForClose();
                node.close();
                if (!node.awaitClose(20, TimeUnit.SECONDS)) {
                    System.err.println("EsNode: node did not close within 20s");
                }
            } catch (Exception e) {
                System.err.println("EsNode: close failed: " + e);
            } finally {
                stopped.countDown();
            }
        }, "es-shutdown"));

        node.start();
        System.out.println("EsNode: started, home=" + home);
        stopped.await();
    }
}
