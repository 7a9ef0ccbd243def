// Runs the client against a live server: `node build/smoke.js http://127.0.0.1:8000`, with
// ADMIN_EMAIL and ADMIN_PASSWORD naming an admin (who stands in for a librarian).
import { ApiError, LibraryClient, explainBorrowConflict, type BorrowConflict } from "./client.js";

// A 1x1 PNG.
const PNG = Uint8Array.from(
  Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
    "base64",
  ),
);

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`failed: ${what}`);
  console.log(`ok - ${what}`);
}

async function main(): Promise<void> {
  const base = process.argv[2] ?? "http://127.0.0.1:8000";
  const adminEmail = process.env.ADMIN_EMAIL ?? "";
  const adminPassword = process.env.ADMIN_PASSWORD ?? "";

  const librarian = new LibraryClient(base);
  await librarian.logIn(adminEmail, adminPassword);
  const book = await librarian.createBook({
    title: "The Left Hand of Darkness",
    authors: ["Ursula K. Le Guin"],
    isbn: "978-0-441-47812-5",
    published_date: "1969-03-01",
    total_copies: 2,
  });
  check(book.isbn === "9780441478125", "a librarian creates a book (ISBN stored as 13 digits)");
  const covered = await librarian.uploadCover(book.id, PNG, "image/png");
  check(covered.cover_url !== null, "a librarian uploads its cover");

  const reader = new LibraryClient(base);
  const email = `reader.${Date.now()}@example.com`;
  const user = await reader.register({ name: "Ada Lovelace", email, password: "analytical engine 1843" });
  check(user.role === "member", "a reader registers as a member");
  const tokens = await reader.logIn(email, "analytical engine 1843");
  check(tokens.token_type === "bearer" && tokens.expires_in > 0, "the reader logs in");

  const found = await reader.searchBooks({ q: "left hand", available: true, sort: "title" });
  check(found.items.some((b) => b.id === book.id), "search finds the book");

  const loan = await reader.borrow(book.id);
  check(loan.status === "active" && loan.book_id === book.id, "the reader borrows it");
  try {
    await reader.borrow(book.id);
    check(false, "a second borrow is refused");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const code = error.code as BorrowConflict;
    check(error.status === 409 && code === "already_borrowed", `a second borrow is refused: ${explainBorrowConflict(code)}`);
  }

  try {
    await new LibraryClient(base).logIn(email, "not the password");
    check(false, "a wrong password is refused");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const body = error.body as { error?: string; code?: string };
    check(error.status === 401 && body.error === "invalid_grant", "a wrong password is an OAuth2 invalid_grant");
  }

  const cover = await reader.coverETag(book.id);
  check(/^"[0-9a-f]{64}"$/.test(cover.etag) && cover.type === "image/png", `the cover's ETag is ${cover.etag}`);
  check(cover.bytes === PNG.byteLength, "the cover comes back byte for byte");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
