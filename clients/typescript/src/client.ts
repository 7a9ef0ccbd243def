// A small typed client of library-api: every type comes from src/schema.d.ts, which
// `npm run generate` (openapi-typescript) makes from the committed OpenAPI document.
import type { components, operations } from "./schema.js";

type Schemas = components["schemas"];
export type Book = Schemas["BookPublic"];
export type BookCreate = Schemas["BookCreate"];
export type BookPage = Schemas["Page_BookPublic_"];
export type Loan = Schemas["LoanPublic"];
export type TokenPair = Schemas["TokenPair"];
export type User = Schemas["UserPublic"];
export type UserRegister = Schemas["UserRegister"];
export type SearchQuery = NonNullable<operations["list_books"]["parameters"]["query"]>;
/** The codes a borrow can be refused with (409): a client can switch on them. */
export type BorrowConflict =
  operations["borrow_book"]["responses"][409]["content"]["application/json"]["code"];
export type LoginRefusal =
  operations["login"]["responses"][401]["content"]["application/json"];

/** Any error answer: `{detail, code}` (and more for some routes). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly body: unknown,
  ) {
    super(`${status} ${code}`);
  }
}

export class LibraryClient {
  constructor(
    private readonly base: string,
    private token?: string,
  ) {}

  private async call<T>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    const headers = new Headers(init.headers);
    if (this.token) headers.set("Authorization", `Bearer ${this.token}`);
    const response = await fetch(`${this.base}${path}`, { ...init, method, headers });
    const body: unknown = response.status === 204 ? undefined : await response.json();
    if (!response.ok) {
      const code = (body as { code?: string } | undefined)?.code ?? "unknown";
      throw new ApiError(response.status, code, body);
    }
    return body as T;
  }

  private json<T>(method: string, path: string, body: unknown): Promise<T> {
    return this.call<T>(method, path, {
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
    });
  }

  register(account: UserRegister): Promise<User> {
    return this.json<User>("POST", "/api/v1/auth/register", account);
  }

  /** OAuth2's password flow: the email goes in `username`. Keeps the access token. */
  async logIn(email: string, password: string): Promise<TokenPair> {
    const form = new URLSearchParams({ username: email, password });
    const tokens = await this.call<TokenPair>("POST", "/api/v1/auth/login", { body: form });
    this.token = tokens.access_token;
    return tokens;
  }

  searchBooks(query: SearchQuery): Promise<BookPage> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) params.set(name, String(value));
    }
    return this.call<BookPage>("GET", `/api/v1/books?${params}`);
  }

  createBook(book: BookCreate): Promise<Book> {
    return this.json<Book>("POST", "/api/v1/books", book);
  }

  /** Borrows for the caller (a librarian may name `user_id`). */
  borrow(bookId: string, body: Schemas["BorrowRequest"] = {}): Promise<Loan> {
    return this.json<Loan>("POST", `/api/v1/books/${encodeURIComponent(bookId)}/borrow`, body);
  }

  uploadCover(
    bookId: string,
    image: Uint8Array<ArrayBuffer>,
    type: "image/png" | "image/jpeg" | "image/webp",
  ): Promise<Book> {
    const form = new FormData();
    form.set("file", new Blob([image], { type }), "cover");
    return this.call<Book>("PUT", `/api/v1/books/${encodeURIComponent(bookId)}/cover`, { body: form });
  }

  /** The cover's ETag (its quoted SHA-256), read from a GET that needs no token. */
  async coverETag(bookId: string): Promise<{ etag: string; type: string; bytes: number }> {
    const response = await fetch(`${this.base}/api/v1/books/${encodeURIComponent(bookId)}/cover`);
    if (!response.ok) throw new ApiError(response.status, "cover", await response.text());
    const etag = response.headers.get("ETag");
    if (etag === null) throw new Error("the cover has no ETag");
    const bytes = (await response.arrayBuffer()).byteLength;
    return { etag, type: response.headers.get("Content-Type") ?? "", bytes };
  }
}

/** What a reader is told when a borrow is refused: exhaustive over the declared codes. */
export function explainBorrowConflict(code: BorrowConflict): string {
  switch (code) {
    case "has_overdue_loans":
      return "Return your overdue books first.";
    case "fines_outstanding":
      return "Settle your open fines at the desk first.";
    case "already_borrowed":
      return "You already have this book.";
    case "loan_limit_reached":
      return "You have borrowed as many books as you may.";
    case "no_copies_available":
      return "Every copy is out: reserve it instead.";
    case "account_disabled":
      return "That account is deactivated.";
    case "request_in_progress":
      return "Your earlier request is still running.";
    default: {
      const unknown: never = code;
      return unknown;
    }
  }
}
