// Which titles Lucene's KoreanAnalyzer (Elasticsearch's `nori`, default settings) finds for
// each query with an AND match: a title matches when every token of the query is a token of
// the title. The reference nanum's Korean search is measured against (see
// docs/korean-search.md). Run by scripts/nori-expectations; Java 17 runs this file as is.
//
//   java -cp 'DIR/*' NoriMatch.java TITLES QUERIES MUST_NOT [--tokens]
//
// TITLES and QUERIES: one per line (`#` comments, blank lines skipped). MUST_NOT: lines of
// `query<TAB>title` that a reader would not call a match; nori must not match them either.
// Prints `query<TAB>title` for every match, in input order; with --tokens, also the tokens.
// Exits 1 when a MUST_NOT pair matches or names an unknown title or query.

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.ko.KoreanAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;

public class NoriMatch {
    static List<String> lines(String file) throws IOException {
        List<String> out = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(file), StandardCharsets.UTF_8)) {
            String t = line.strip();
            if (!t.isEmpty() && !t.startsWith("#")) out.add(t);
        }
        return out;
    }

    static Set<String> tokens(Analyzer analyzer, String text) throws IOException {
        Set<String> out = new LinkedHashSet<>();
        try (TokenStream stream = analyzer.tokenStream("f", text)) {
            CharTermAttribute term = stream.addAttribute(CharTermAttribute.class);
            stream.reset();
            while (stream.incrementToken()) out.add(term.toString());
            stream.end();
        }
        return out;
    }

    static boolean matches(Set<String> query, Set<String> title) {
        return !query.isEmpty() && title.containsAll(query);
    }

    public static void main(String[] args) throws IOException {
        List<String> titles = lines(args[0]);
        List<String> queries = lines(args[1]);
        List<String> mustNot = lines(args[2]);
        boolean showTokens = args.length > 3 && args[3].equals("--tokens");
        Analyzer analyzer = new KoreanAnalyzer();
        List<Set<String>> titleTokens = new ArrayList<>();
        for (String title : titles) {
            titleTokens.add(tokens(analyzer, title));
            if (showTokens) System.err.println("title\t" + title + "\t" + titleTokens.get(titleTokens.size() - 1));
        }
        for (String query : queries) {
            Set<String> q = tokens(analyzer, query);
            if (showTokens) System.err.println("query\t" + query + "\t" + q);
            for (int i = 0; i < titles.size(); i++) {
                if (matches(q, titleTokens.get(i))) System.out.println(query + "\t" + titles.get(i));
            }
        }
        int bad = 0;
        for (String pair : mustNot) {
            String[] parts = pair.split("\t");
            int at = titles.indexOf(parts.length == 2 ? parts[1] : "");
            if (parts.length != 2 || at < 0) {
                System.err.println("must-not pair names an unknown title: " + pair);
                bad++;
            } else if (matches(tokens(analyzer, parts[0]), titleTokens.get(at))) {
                System.err.println("nori matches a must-not pair: " + pair);
                bad++;
            }
        }
        System.exit(bad == 0 ? 0 : 1);
    }
}
