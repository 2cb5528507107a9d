//! `#[derive(Events)]`: an enum whose variants are the event types a handler
//! takes. Each variant names its type (SCREAMING_SNAKE_CASE of the variant,
//! or `#[event("NAME")]`) and says what its data is: one field, parsed from
//! the data, or none, the data ignored. On a struct: one event type, named
//! after the struct, whose data is the struct.

use heck::ToShoutySnakeCase;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::names;

pub fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "an Events type is not generic",
        ));
    }
    let data = match &input.data {
        Data::Enum(data) => data,
        Data::Struct(_) => return single(&input),
        Data::Union(_) => {
            return Err(syn::Error::new(
                input.ident.span(),
                "Events derives on an enum with one variant per event type, \
                 or on a struct that is the data of one event type",
            ));
        }
    };
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "an Events enum needs a variant per event type; to take every type, take `Event`",
        ));
    }

    let mut types: Vec<String> = Vec::new();
    let mut arms = Vec::new();
    for variant in &data.variants {
        let event_type = event_type(&variant.attrs, &variant.ident)?;
        if types.contains(&event_type) {
            return Err(syn::Error::new(
                variant.span(),
                format!("event type {event_type:?} is taken by an earlier variant"),
            ));
        }
        let name = &variant.ident;
        let value = match &variant.fields {
            Fields::Unit => quote!(Self::#name),
            Fields::Unnamed(f) if f.unnamed.len() == 1 => {
                quote!(Self::#name(event.data()?))
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "an event variant holds its data in one field, `Variant(Data)`, or none",
                ));
            }
        };
        arms.push(quote!(#event_type => ::core::result::Result::Ok(#value),));
        types.push(event_type);
    }

    let ident = &input.ident;
    let input_name = ident.to_string();
    Ok(quote! {
        impl ::handler_sdk::FromMessage for #ident {
            const EVENT_TYPES: &'static [&'static str] = &[#(#types),*];
            const ACCEPTS: ::handler_sdk::Accepts = ::handler_sdk::Accepts::Envelope;

            fn from_message(
                message: ::handler_sdk::Message,
            ) -> ::core::result::Result<Self, ::handler_sdk::HandlerError> {
                let event = ::handler_sdk::__private::expect_event(#input_name, message)?;
                match event.event_type.as_str() {
                    #(#arms)*
                    _ => ::core::result::Result::Err(
                        ::handler_sdk::__private::unexpected_event_type::<Self>(&event),
                    ),
                }
            }
        }
    })
}

/// A struct is the data of one event type, named after the struct.
fn single(input: &DeriveInput) -> syn::Result<TokenStream> {
    let event_type = event_type(&input.attrs, &input.ident)?;
    let ident = &input.ident;
    let input_name = ident.to_string();
    Ok(quote! {
        impl ::handler_sdk::FromMessage for #ident {
            const EVENT_TYPES: &'static [&'static str] = &[#event_type];
            const ACCEPTS: ::handler_sdk::Accepts = ::handler_sdk::Accepts::Envelope;

            fn from_message(
                message: ::handler_sdk::Message,
            ) -> ::core::result::Result<Self, ::handler_sdk::HandlerError> {
                let event = ::handler_sdk::__private::expect_event(#input_name, message)?;
                if event.event_type != #event_type {
                    return ::core::result::Result::Err(
                        ::handler_sdk::__private::unexpected_event_type::<Self>(&event),
                    );
                }
                event.data()
            }
        }
    })
}

/// `#[event("NAME")]` among `attrs`, else `ident` in SCREAMING_SNAKE_CASE.
fn event_type(attrs: &[syn::Attribute], ident: &syn::Ident) -> syn::Result<String> {
    let mut named: Option<LitStr> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
        if named.is_some() {
            return Err(syn::Error::new(
                attr.span(),
                "one #[event(\"NAME\")] per variant",
            ));
        }
        named = Some(attr.parse_args().map_err(|e| {
            syn::Error::new(e.span(), "write the event type as #[event(\"NAME\")]")
        })?);
    }
    let (event_type, span) = match named {
        Some(lit) => (lit.value(), lit.span()),
        None => (ident.to_string().to_shouty_snake_case(), ident.span()),
    };
    names::event_type(&event_type, span)?;
    Ok(event_type)
}
