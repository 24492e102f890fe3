//! Entry point of the dashboard's wasm module: mount [`dashboard::App`] on `<body>`.

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(dashboard::App);
}
