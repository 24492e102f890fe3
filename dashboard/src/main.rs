//! Entry point of the dashboard's wasm module: replace the static app shell of
//! `index.html` (painted before the wasm loaded) with [`dashboard::App`] on `<body>`.

fn main() {
    console_error_panic_hook::set_once();
    if let Some(shell) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("app-shell"))
    {
        shell.remove();
    }
    leptos::mount::mount_to_body(dashboard::App);
}
