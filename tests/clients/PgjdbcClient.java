// pgJDBC through pgsluice. With the default prepareThreshold (5) a PreparedStatement runs as
// the unnamed statement four times and then becomes a named server-side statement (S_1...); with
// prepareThreshold=1 it is named from the first execution. Each statement here runs more than
// five times, from many threads (one connection each), so both paths meet shared servers.
//
// Usage: java -cp postgresql.jar:DIR PgjdbcClient HOST PORT USER PASSWORD DBNAME CLIENTS ROUNDS THRESHOLD
// THRESHOLD is "default" (the driver's own) or a number for prepareThreshold.
// Checks every result; prints "OK ..." and exits 0, or prints the mismatches and exits 1.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicInteger;

public final class PgjdbcClient {
    private static final AtomicInteger QUERIES = new AtomicInteger();

    private PgjdbcClient() {}

    private static void check(String what, Object got, Object want) {
        if (!String.valueOf(got).equals(String.valueOf(want))) {
            throw new IllegalStateException(what + ": got " + got + ", want " + want);
        }
    }

    private static void work(String url, Properties props, int client, int rounds) throws SQLException {
        try (Connection conn = DriverManager.getConnection(url, props)) {
            try (PreparedStatement add = conn.prepareStatement("select ?::int4 + ?::int4, ?::text");
                 PreparedStatement series = conn.prepareStatement(
                         "select g, g * ? from generate_series(1, ?) g")) {
                for (int n = 0; n < rounds; n++) {
                    add.setInt(1, client);
                    add.setInt(2, n);
                    add.setString(3, "c" + client);
                    try (ResultSet rs = add.executeQuery()) {
                        check("next", rs.next(), true);
                        check("sum", rs.getInt(1), client + n);
                        check("tag", rs.getString(2), "c" + client);
                        check("one row", rs.next(), false);
                    }
                    series.setInt(1, client);
                    series.setInt(2, n % 4 + 1);
                    try (ResultSet rs = series.executeQuery()) {
                        int g = 0;
                        while (rs.next()) {
                            g++;
                            check("g", rs.getInt(1), g);
                            check("g*client", rs.getInt(2), g * client);
                        }
                        check("rows", g, n % 4 + 1);
                    }
                    QUERIES.addAndGet(2);
                }
            }
            // A transaction with a batch of inserts (Bind/Execute pipelined before one Sync).
            conn.setAutoCommit(false);
            try (PreparedStatement ins = conn.prepareStatement(
                    "insert into jdbc_items (client, k, v) values (?, ?, ?)")) {
                for (int batch = 0; batch < 3; batch++) {
                    for (int k = 0; k < 4; k++) {
                        ins.setInt(1, client);
                        ins.setInt(2, batch * 4 + k);
                        ins.setString(3, "v" + k);
                        ins.addBatch();
                    }
                    ins.executeBatch();
                }
            }
            try (PreparedStatement count = conn.prepareStatement(
                    "select count(*), sum(k) from jdbc_items where client = ?")) {
                count.setInt(1, client);
                try (ResultSet rs = count.executeQuery()) {
                    rs.next();
                    check("count inside transaction", rs.getLong(1), 12);
                    check("sum inside transaction", rs.getLong(2), 66);
                }
            }
            conn.commit();
            conn.setAutoCommit(true);
            QUERIES.addAndGet(4);
            // An error in a prepared execution leaves the connection usable.
            try (PreparedStatement div = conn.prepareStatement("select 10 / ?")) {
                for (int n = 0; n < 8; n++) {
                    int d = n == 6 ? 0 : n % 5 + 1;
                    div.setInt(1, d);
                    try (ResultSet rs = div.executeQuery()) {
                        check("division succeeds", d != 0, true);
                        rs.next();
                        check("quotient", rs.getInt(1), 10 / d);
                    } catch (SQLException e) {
                        check("error only for zero", d + " " + e.getSQLState(), "0 22012");
                    }
                    QUERIES.incrementAndGet();
                }
            }
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("select 1")) {
                rs.next();
                check("simple query", rs.getInt(1), 1);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[4];
        int clients = Integer.parseInt(args[5]);
        int rounds = Integer.parseInt(args[6]);
        Properties props = new Properties();
        props.setProperty("user", args[2]);
        props.setProperty("password", args[3]);
        props.setProperty("connectTimeout", "30");
        props.setProperty("socketTimeout", "60");
        if (!"default".equals(args[7])) {
            props.setProperty("prepareThreshold", args[7]);
        }
        try (Connection setup = DriverManager.getConnection(url, props);
             Statement st = setup.createStatement()) {
            st.execute("drop table if exists jdbc_items");
            st.execute("create table jdbc_items (client int, k int, v text)");
        }
        List<Thread> threads = new ArrayList<>();
        List<String> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int c = 0; c < clients; c++) {
            final int client = c;
            Thread t = new Thread(() -> {
                try {
                    work(url, props, client, rounds);
                } catch (Exception e) {
                    errors.add("client " + client + ": " + e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }
        String version = "pgJDBC " + org.postgresql.util.DriverInfo.DRIVER_VERSION
                + " prepareThreshold=" + args[7];
        if (!errors.isEmpty()) {
            errors.forEach(System.out::println);
            System.out.println("FAILED " + version + ": " + errors.size() + " of " + clients + " clients failed");
            System.exit(1);
        }
        System.out.println("OK " + version + ": " + clients + " clients, " + QUERIES.get() + " checked queries");
    }
}
